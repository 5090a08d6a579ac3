package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/demo"
	"github.com/sluice-data/sluice/node"
	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/server"
)

// The web shop's model answers on the demo's own traffic: every field of
// every explore runs, and the numbers are those of SQL on the events.
func TestWebshopModelOnDemoTraffic(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.ApplyOverrides(dir, "127.0.0.1:0", "127.0.0.1:0")
	cfg.Lake.FlushInterval = config.Duration(300 * time.Millisecond)
	cfg.Semantic.Models = filepath.Join(dir, "models")
	if err := demo.WriteModels(cfg.Semantic.Models); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	ctx := context.Background()
	st, err := demo.Run(ctx, demo.Options{CollectorURL: n.CollectorURL(), History: 4 * time.Hour, HistoryEventsPerHour: 1500,
		Rate: 20, Duration: 200 * time.Millisecond, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	api := &server.Client{URL: n.APIURL()}
	want := fmt.Sprintf("[[%d]]", st.Sent)
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := api.SQL(ctx, "SELECT count(*) FROM events")
		if err == nil && fmt.Sprint(res.Rows) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events: %v %v, want %s", res, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var list server.ExploresResponse
	getJSON(t, n.APIURL()+"/api/v1/explores", &list)
	if len(list.Explores) != 3 || list.Explores[0].Name != "events" || list.Explores[1].Name != "sessions" || list.Explores[2].Name != "bad_rows" {
		t.Fatalf("explores: %+v", list.Explores)
	}
	for _, e := range list.Explores {
		for _, v := range e.Views {
			for _, f := range v.Fields {
				fields := []string{f.Name}
				if f.Kind == "dimension" {
					fields = append(fields, e.View+"."+map[string]string{"events": "events", "sessions": "count", "bad_rows": "count"}[e.View])
				}
				res := explore(t, n.APIURL(), semantic.Query{Explore: e.Name, Fields: fields, Limit: 5})
				// The demo sends no bad rows: their groups are none.
				if len(res.Rows) == 0 && !(e.Name == "bad_rows" && f.Kind == "dimension") {
					t.Errorf("%s %v: no rows\n%s", e.Name, fields, res.SQL)
				}
			}
		}
	}

	// Per country, as SQL on the events says.
	res := explore(t, n.APIURL(), semantic.Query{Explore: "events", Fields: []string{"events.country", "events.revenue", "events.purchases",
		"events.sessions", "sessions.count", "sessions.converted_sessions", "events.conversion"}, Sorts: []semantic.Sort{{Field: "events.country"}}})
	direct, err := api.SQL(ctx, `SELECT country, sum(revenue) FILTER (WHERE event = 'purchase'), count(*) FILTER (WHERE event = 'purchase'),
		count(DISTINCT session_id), count(DISTINCT session_id), count(DISTINCT session_id) FILTER (WHERE event = 'purchase'),
		1.0 * count(DISTINCT session_id) FILTER (WHERE event = 'purchase') / count(DISTINCT session_id)
		FROM events GROUP BY country ORDER BY country NULLS LAST`)
	if err != nil {
		t.Fatal(err)
	}
	if len(direct.Rows) < 3 || fmt.Sprint(rounded(res.Rows)) != fmt.Sprint(rounded(direct.Rows)) {
		t.Errorf("explore:\n%v\ndirect SQL:\n%v\n%s", rounded(res.Rows), rounded(direct.Rows), res.SQL)
	}
}

func explore(t *testing.T, api string, q semantic.Query) server.ExploreResponse {
	t.Helper()
	body, _ := json.Marshal(q)
	resp, err := http.Post(api+"/api/v1/explore", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res server.ExploreResponse
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v", body, resp.StatusCode, err)
	}
	return res
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v", url, resp.StatusCode, err)
	}
}

// rounded writes numbers to 9 significant digits: sums of DOUBLE revenue
// may differ in their last bits with the order they are added in.
func rounded(rows [][]any) [][]string {
	out := make([][]string, len(rows))
	for i, row := range rows {
		for _, v := range row {
			s := fmt.Sprint(v)
			switch x := v.(type) {
			case float64:
				s = strconv.FormatFloat(x, 'g', 9, 64)
			case string, json.Number:
				if f, err := strconv.ParseFloat(fmt.Sprint(x), 64); err == nil {
					s = strconv.FormatFloat(f, 'g', 9, 64)
				}
			case nil:
				s = "NULL"
			}
			out[i] = append(out[i], s)
		}
	}
	return out
}
