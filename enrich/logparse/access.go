package logparse

import (
	"fmt"
	"time"
)

// accessParser reads the access log formats of nginx and apache:
//
//	$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//
// (apache_common stops after the size). Fields that follow, like nginx's
// "$http_x_forwarded_for", are ignored. A hand-written scanner: it runs at
// several million lines per second, where a regular expression would not.
type accessParser struct {
	name     string
	combined bool
}

// scanner walks a line; its errors name the format, the part expected and
// the byte offset.
type scanner struct {
	s    string
	i    int
	name string
}

func (sc *scanner) fail(what string) error {
	return fmt.Errorf("%s: expected %s at byte %d", sc.name, what, sc.i)
}

// token returns the text up to the next space.
func (sc *scanner) token(what string) (string, error) {
	start := sc.i
	for sc.i < len(sc.s) && sc.s[sc.i] != ' ' {
		sc.i++
	}
	if sc.i == start {
		sc.i = start
		return "", sc.fail(what)
	}
	return sc.s[start:sc.i], nil
}

// space consumes one or more spaces.
func (sc *scanner) space(before string) error {
	if sc.i >= len(sc.s) || sc.s[sc.i] != ' ' {
		return sc.fail("' ' before " + before)
	}
	for sc.i < len(sc.s) && sc.s[sc.i] == ' ' {
		sc.i++
	}
	return nil
}

// delimited returns the text between open and close; a backslash escapes
// the next byte (apache writes \" inside quotes; nginx writes \x22).
func (sc *scanner) delimited(open, close byte, what string) (string, error) {
	if sc.i >= len(sc.s) || sc.s[sc.i] != open {
		return "", fmt.Errorf("%s: expected '%c' before %s at byte %d", sc.name, open, what, sc.i)
	}
	start := sc.i + 1
	for j := start; j < len(sc.s); j++ {
		switch sc.s[j] {
		case '\\':
			j++
		case close:
			sc.i = j + 1
			return sc.s[start:j], nil
		}
	}
	return "", fmt.Errorf("%s: %s starting at byte %d has no closing '%c'", sc.name, what, sc.i, close)
}

func (p accessParser) Parse(rec []byte) (Record, error) {
	s := string(rec)
	sc := scanner{s: s, name: p.name}
	r := Record{Message: s, Fields: make([]Field, 0, 10)}
	addr, err := sc.token("remote_addr")
	if err != nil {
		return Record{}, err
	}
	r.IP = addr
	r.Fields = append(r.Fields, Field{Name: "remote_addr", Value: addr})
	if err := sc.space("ident"); err != nil {
		return Record{}, err
	}
	if _, err := sc.token("ident ('-')"); err != nil {
		return Record{}, err
	}
	if err := sc.space("remote_user"); err != nil {
		return Record{}, err
	}
	user, err := sc.token("remote_user")
	if err != nil {
		return Record{}, err
	}
	if user != "-" {
		r.Fields = append(r.Fields, Field{Name: "remote_user", Value: user})
	}
	if err := sc.space("time_local"); err != nil {
		return Record{}, err
	}
	at := sc.i
	ts, err := sc.delimited('[', ']', "time_local")
	if err != nil {
		return Record{}, err
	}
	if r.Time, _ = parseNginxTime(ts); r.Time.IsZero() {
		return Record{}, fmt.Errorf("%s: time_local %q at byte %d is not like %s", p.name, ts, at+1, nginxTime)
	}
	if err := sc.space("request"); err != nil {
		return Record{}, err
	}
	req, err := sc.delimited('"', '"', "request")
	if err != nil {
		return Record{}, err
	}
	if m, path, proto, ok := splitRequest(req); ok {
		r.Fields = append(r.Fields, Field{Name: "method", Value: m}, Field{Name: "path", Value: path}, Field{Name: "protocol", Value: proto})
	} else {
		r.Fields = append(r.Fields, Field{Name: "request", Value: req})
	}
	if err := sc.space("status"); err != nil {
		return Record{}, err
	}
	at = sc.i
	status, err := sc.token("status")
	if err != nil {
		return Record{}, err
	}
	if !allDigits(status) {
		return Record{}, fmt.Errorf("%s: status %q at byte %d is not a number", p.name, status, at)
	}
	r.Fields = append(r.Fields, Field{Name: "status", Kind: Int, Value: status})
	if err := sc.space("body_bytes_sent"); err != nil {
		return Record{}, err
	}
	at = sc.i
	size, err := sc.token("body_bytes_sent")
	if err != nil {
		return Record{}, err
	}
	switch {
	case size == "-": // apache's %b for an empty body
	case allDigits(size):
		r.Fields = append(r.Fields, Field{Name: "body_bytes_sent", Kind: Int, Value: size})
	default:
		return Record{}, fmt.Errorf("%s: body_bytes_sent %q at byte %d is not a number", p.name, size, at)
	}
	if !p.combined {
		return r, nil
	}
	if err := sc.space("http_referer"); err != nil {
		return Record{}, err
	}
	ref, err := sc.delimited('"', '"', "http_referer")
	if err != nil {
		return Record{}, err
	}
	if ref != "-" && ref != "" {
		r.Fields = append(r.Fields, Field{Name: "http_referer", Value: ref})
	}
	if err := sc.space("http_user_agent"); err != nil {
		return Record{}, err
	}
	ua, err := sc.delimited('"', '"', "http_user_agent")
	if err != nil {
		return Record{}, err
	}
	if ua != "-" && ua != "" {
		r.Fields = append(r.Fields, Field{Name: "http_user_agent", Value: ua})
	}
	return r, nil
}

// splitRequest splits "GET /path HTTP/1.1".
func splitRequest(req string) (method, path, proto string, ok bool) {
	sp1 := indexByte(req, ' ', 0)
	if sp1 <= 0 {
		return "", "", "", false
	}
	sp2 := lastIndexByte(req, ' ')
	if sp2 <= sp1+1 || sp2 == len(req)-1 {
		return "", "", "", false
	}
	path = req[sp1+1 : sp2]
	if indexByte(path, ' ', 0) >= 0 {
		return "", "", "", false
	}
	return req[:sp1], path, req[sp2+1:], true
}

func indexByte(s string, c byte, from int) int {
	for i := from; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func lastIndexByte(s string, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func allDigits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseNginxTime reads 02/Jan/2006:15:04:05 -0700 without time.Parse (it is
// on every line), returning UTC.
func parseNginxTime(s string) (time.Time, bool) {
	if len(s) != len(nginxTime) || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' || s[20] != ' ' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if !isDigit(c) {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	day, year, hh, mm, ss := num(0, 2), num(7, 4), num(12, 2), num(15, 2), num(18, 2)
	zh, zm := num(22, 2), num(24, 2)
	month := 0
	for i, m := range months {
		if s[3:6] == m {
			month = i + 1
		}
	}
	sign := s[21]
	if day < 1 || day > 31 || year < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 ||
		zh < 0 || zh > 23 || zm < 0 || zm > 59 || month == 0 || (sign != '+' && sign != '-') {
		return time.Time{}, false
	}
	off := (zh*60 + zm) * 60
	if sign == '-' {
		off = -off
	}
	t := time.Date(year, time.Month(month), day, hh, mm, ss, 0, time.UTC).Add(-time.Duration(off) * time.Second)
	if t.Day() != day && off == 0 { // 31/Feb and the like
		return time.Time{}, false
	}
	return t, true
}
