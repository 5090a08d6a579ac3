package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/dashboard"
	"github.com/sluice-data/sluice/demo"
	"github.com/sluice-data/sluice/semantic"
)

func TestDashboardsAPI(t *testing.T) {
	m, err := semantic.LoadFS(demo.Models(), "models")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dashboard.LoadFS(demo.Dashboards(), "dashboards", m)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(Options{Token: "s3cret", Dashboards: func() []*dashboard.Dashboard { return ds }}))
	defer srv.Close()
	code, body := call(t, "GET", srv.URL+"/api/v1/dashboards", "", "s3cret")
	if code != http.StatusOK || !strings.Contains(body, `{"name":"webshop","title":"Web shop"`) {
		t.Errorf("list: %d %s", code, body)
	}
	code, body = call(t, "GET", srv.URL+"/api/v1/dashboards/webshop", "", "s3cret")
	if code != http.StatusOK || !strings.Contains(body, `"time_field":"events.event_time"`) || !strings.Contains(body, `"refresh":"10s"`) {
		t.Errorf("one: %d %s", code, body)
	}
	if code, body = call(t, "GET", srv.URL+"/api/v1/dashboards/nope", "", "s3cret"); code != http.StatusNotFound {
		t.Errorf("unknown: %d %s", code, body)
	}
}
