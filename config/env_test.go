package config

import (
	"os"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"HOST": "db.local", "EMPTY": "", "PORT": "5432"}
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
	for _, tc := range []struct {
		name, in, want string
		problems       []string // messages, in order
	}{
		{"set", "a: ${HOST}:${PORT}\n", "a: db.local:5432\n", nil},
		{"set but empty", "a: '${EMPTY}'\n", "a: ''\n", nil},
		{"default when unset", "a: ${NOPE:-fallback value}\n", "a: fallback value\n", nil},
		{"default when empty", "a: ${EMPTY:-x}\n", "a: x\n", nil},
		{"empty default", "a: ${NOPE:-}\n", "a: \n", nil},
		{"set beats default", "a: ${HOST:-x}\n", "a: db.local\n", nil},
		{"escape", "a: $${HOST} $${NOPE:-x}\n", "a: ${HOST} ${NOPE:-x}\n", nil},
		{"dollar without brace", "a: $HOST $$ cost$5 $\n", "a: $HOST $$ cost$5 $\n", nil},
		{"comment line left alone", "  # token: ${NOPE} $${x}\na: ${HOST}\n", "  # token: ${NOPE} $${x}\na: db.local\n", nil},
		{"unset", "a: ${NOPE}\nb: ${HOST}\n", "a: \nb: db.local\n", []string{"environment variable NOPE is not set"}},
		{"bad name", "a: ${1X} ${A-B} ${}\n", "a:   \n", []string{
			"${1X} is not a valid variable reference", "${A-B} is not a valid variable reference", "${} is not a valid variable reference"}},
		{"unterminated", "a: ${HOST\nb: 1\n", "a: ${HOST\nb: 1\n", []string{"${ is not closed by } on the same line"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, problems := expandEnv([]byte(tc.in), lookup)
			if string(x.text) != tc.want {
				t.Errorf("got %q, want %q", x.text, tc.want)
			}
			if len(problems) != len(tc.problems) {
				t.Fatalf("problems = %+v, want %q", problems, tc.problems)
			}
			for i, p := range problems {
				if p.message != tc.problems[i] {
					t.Errorf("problem %d = %q, want %q", i, p.message, tc.problems[i])
				}
			}
		})
	}
}

func TestEnvInConfig(t *testing.T) {
	t.Setenv("SLUICE_TEST_TOKEN", "tok")
	t.Setenv("SLUICE_TEST_ADDR", "0.0.0.0:9000")
	t.Setenv("SLUICE_TEST_EMPTY", "")
	src := `data_dir: ${SLUICE_TEST_UNSET:-/srv/sluice}
http: {api: "${SLUICE_TEST_ADDR}", collector: ${SLUICE_TEST_EMPTY:-127.0.0.1:7000}}
auth: {token: ${SLUICE_TEST_TOKEN}}
bus: {url: "$${NOT_A_VAR}"}
`
	errs := parseErrors(t, src)
	// The literal ${NOT_A_VAR} is an invalid bus URL: proof that it was kept.
	if len(errs) != 1 || errs[0].Path != "bus.url" || errs[0].Message != `bus.url "${NOT_A_VAR}" is neither embedded nor a nats:// or tls:// URL` {
		t.Fatalf("errors = %v", errs)
	}
	c, err := Parse("sluice.yaml", []byte(src[:len(src)-len("bus: {url: \"$${NOT_A_VAR}\"}\n")]))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/srv/sluice" || c.HTTP.API != "0.0.0.0:9000" || c.HTTP.Collector != "127.0.0.1:7000" || c.Auth.Token != "tok" {
		t.Errorf("config = %+v", c)
	}
}

func TestEnvErrorPositions(t *testing.T) {
	t.Setenv("SLUICE_TEST_ADDR", "127.0.0.1:9999")
	t.Setenv("SLUICE_TEST_BUS", "kafka://k")
	t.Setenv("SLUICE_TEST_TWO_LINES", "a\nb")
	t.Setenv("SLUICE_TEST_UNSET", "")
	t.Setenv("SLUICE_TEST_UNSET2", "")
	// t.Setenv restores them after the test.
	os.Unsetenv("SLUICE_TEST_UNSET")
	os.Unsetenv("SLUICE_TEST_UNSET2")
	checkErrors(t, `http: {collector: ${SLUICE_TEST_ADDR}, api: nope}
bus: {url: ${SLUICE_TEST_BUS}}
data_dir: "${SLUICE_TEST_TWO_LINES}"
lake: {max_rows: ${SLUICE_TEST_UNSET}, flush_interval: ${SLUICE_TEST_UNSET2}}
warehouse: {url: x, colour: red}
`, []wantErr{
		// Positions after a substituted value are those of the file as written.
		{1, 45, "http.api", `http.api: "nope" is not host:port`, ""},
		// A problem inside a substituted value points at its ${.
		{2, 12, "bus.url", `bus.url "kafka://k" is neither embedded`, ""},
		{4, 18, "", "environment variable SLUICE_TEST_UNSET is not set", "export SLUICE_TEST_UNSET, or write ${SLUICE_TEST_UNSET:-default}"},
		{4, 56, "", "environment variable SLUICE_TEST_UNSET2 is not set", ""},
		// A value with a newline does not shift the lines after it.
		{5, 18, "warehouse.url", `unknown warehouse "x"`, ""},
		{5, 21, "warehouse.colour", `unknown key "colour" in warehouse`, ""},
	})
}
