package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPostgresCDCDefaults(t *testing.T) {
	src := `sources:
  orders_cdc: {type: postgres_cdc, url: "postgres://sluice:pw@db:5432/shop", tables: [orders, billing.invoices, '"Line Items"']}
  users: {type: postgres_cdc, url: "postgres://db/shop", tables: [users], stream: people, slot: users_slot, publication: users_pub}
streams:
  people: {retention: 1h}
pipelines:
  big_orders:
    from: orders_cdc
    steps: [{filter: 'fields.op == "insert"'}]
    to: {lake: big_orders}
`
	c, err := Parse("sluice.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Source{
		"orders_cdc": {Type: "postgres_cdc", URL: "postgres://sluice:pw@db:5432/shop", Tables: []string{"orders", "billing.invoices", `"Line Items"`},
			Stream: "orders_cdc", Slot: "sluice_orders_cdc", Publication: "sluice_orders_cdc"},
		"users": {Type: "postgres_cdc", URL: "postgres://db/shop", Tables: []string{"users"}, Stream: "people", Slot: "users_slot", Publication: "users_pub"},
	}
	if !reflect.DeepEqual(c.Sources, want) {
		t.Errorf("sources:\n got  %+v\n want %+v", c.Sources, want)
	}
	if got := c.CDCStreams(); !reflect.DeepEqual(got, []string{"orders_cdc", "people"}) {
		t.Errorf("CDCStreams = %v", got)
	}
	if got := c.SourceStreams(); !reflect.DeepEqual(got, []string{"orders_cdc", "people"}) {
		t.Errorf("SourceStreams = %v", got)
	}
	// A stream of changes keeps what logs keeps unless told otherwise.
	if r := c.Streams["orders_cdc"].Retention; r != Duration(168*time.Hour) {
		t.Errorf("orders_cdc retention %s", r)
	}
	if r := c.Streams["people"].Retention; r != Duration(time.Hour) {
		t.Errorf("people retention %s", r)
	}
	// A lake output of a pipeline that reads changes is placed by commit time.
	if got := c.LakeOutputs()["big_orders"]; got != "commit_time" {
		t.Errorf("lake output time %q, want commit_time", got)
	}
}

func TestPostgresCDCErrors(t *testing.T) {
	const url = `url: "postgres://db/shop"`
	for _, tc := range []struct {
		name string
		src  string
		want []wantErr
	}{
		{"no url", "sources:\n  orders_cdc: {type: postgres_cdc, tables: [orders]}\n",
			[]wantErr{{2, 3, "sources.orders_cdc", "a postgres_cdc source needs url", "postgres://user:password@host:5432/database"}}},
		{"not a postgres URL", "sources:\n  o: {type: postgres_cdc, url: 'mysql://db/shop', tables: [orders]}\n",
			[]wantErr{{2, 32, "sources.o.url", "url is not a postgres:// URL", "postgres://"}}},
		{"unparsable URL, password masked", "sources:\n  o: {type: postgres_cdc, url: 'postgres://u:secret@db:port/shop', tables: [orders]}\n",
			[]wantErr{{2, 32, "sources.o.url", "url is not a PostgreSQL URL: cannot parse `postgres://u:xxxxx@db:port/shop`: invalid port", ""}}},
		{"replication in the URL", "sources:\n  o: {type: postgres_cdc, url: 'postgres://db/shop?replication=database', tables: [orders]}\n",
			[]wantErr{{2, 32, "sources.o.url", "url must not set replication", "remove the replication parameter"}}},
		{"no tables", "sources:\n  o: {type: postgres_cdc, " + url + "}\n",
			[]wantErr{{2, 3, "sources.o", "a postgres_cdc source needs tables", "tables: [orders]"}}},
		{"bad table name", "sources:\n  o:\n    type: postgres_cdc\n    " + url + "\n    tables: [orders, 'orders; drop table x']\n",
			[]wantErr{{5, 22, "sources.o.tables[1]", `"orders; drop table x" is not a table name`, "schema.table"}}},
		{"table twice", "sources:\n  o:\n    type: postgres_cdc\n    " + url + "\n    tables: [orders, orders]\n",
			[]wantErr{{5, 22, "sources.o.tables[1]", "table orders is listed twice", ""}}},
		{"built-in stream", "sources:\n  o: {type: postgres_cdc, " + url + ", tables: [orders], stream: events}\n",
			[]wantErr{{2, 80, "sources.o.stream", "changes cannot go to the events stream", "defaults to the source's name"}}},
		{"bad stream name", "sources:\n  o: {type: postgres_cdc, " + url + ", tables: [orders], stream: Orders}\n",
			[]wantErr{{2, 80, "sources.o.stream", `stream name "Orders" is not usable`, "lower-case"}}},
		{"source name that cannot name a stream", "sources:\n  Orders-CDC: {type: postgres_cdc, " + url + ", tables: [orders]}\n",
			[]wantErr{
				{2, 3, "sources.Orders-CDC", `source name "Orders-CDC" cannot name its stream`, "set stream:"},
				{2, 3, "sources.Orders-CDC", `the default slot name "sluice_Orders-CDC" is not usable`, "set slot:"},
				{2, 3, "sources.Orders-CDC", `the default publication name "sluice_Orders-CDC" is not usable`, "set publication:"},
			}},
		{"bad slot and publication", "sources:\n  o: {type: postgres_cdc, " + url + ", tables: [orders], slot: My-Slot, publication: 1pub}\n",
			[]wantErr{
				{2, 78, "sources.o.slot", `slot name "My-Slot" is not usable`, "at most 63"},
				{2, 100, "sources.o.publication", `publication name "1pub" is not usable`, ""},
			}},
		{"keys of other source types", "sources:\n  o: {type: postgres_cdc, " + url + ", tables: [orders], paths: [a.log]}\n",
			[]wantErr{{2, 79, "sources.o.paths", "paths does not apply to a postgres_cdc source", "remove it"}}},
		{"slot on a file source", "sources:\n  f: {type: file, paths: [a.log], slot: s}\n",
			[]wantErr{{2, 41, "sources.f.slot", "slot does not apply to a file source", ""}}},
		{"two sources, one slot", "sources:\n  a: {type: postgres_cdc, " + url + ", tables: [orders], slot: s}\n  b: {type: postgres_cdc, " + url + ", tables: [users], slot: s}\n",
			[]wantErr{{3, 77, "sources.b.slot", "sources a and b use the same slot s", "a slot of its own"}}},
		{"a file source on the stream of changes", "sources:\n  orders: {type: postgres_cdc, " + url + ", tables: [orders]}\n  f: {type: file, paths: [a.log], stream: orders}\n",
			[]wantErr{{2, 11, "sources.orders.stream", "source f writes log records to stream orders; changes need a stream of their own", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.src, tc.want)
			if tc.name == "unparsable URL, password masked" {
				if errs := parseErrors(t, tc.src); strings.Contains(errs.Error(), "secret") {
					t.Errorf("the error shows the password: %v", errs)
				}
			}
		})
	}
}
