package pgcdc

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

func TestAppendLSN(t *testing.T) {
	for _, l := range []pglogrepl.LSN{0, 0x16B3748, 0xA_0000_0001, 0xFFFFFFFF_FFFFFFFF} {
		if got, want := string(appendLSN(nil, l)), l.String(); got != want {
			t.Errorf("%d: %s, want %s", uint64(l), got, want)
		}
	}
}
