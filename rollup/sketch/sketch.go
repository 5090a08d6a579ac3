// Package sketch reads the sketches a rollup's SQL table carries in its
// <metric>_sketch columns, and merges them: HyperLogLog sketches of
// distinct metrics (github.com/axiomhq/hyperloglog, MarshalBinary) and
// DDSketches of quantile metrics (github.com/DataDog/sketches-go, Encode
// with the index mapping). The warehouse's SQL functions sluice_distinct
// and sluice_quantile are built on it, so that SQL which groups coarser
// than a rollup's grain merges sketches as the rollup query API does,
// instead of adding up estimates.
//
// Promises: the blobs are untrusted input (any BLOB a query passes): one
// that is not a sketch of the expected kind, or one cut short, is an error
// that says which blob; nothing panics, and memory stays in proportion to
// the blobs' size. (A DDSketch cut between two of its blocks is a smaller
// DDSketch: the format has no length that would tell.)
package sketch

import (
	"errors"
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/axiomhq/hyperloglog"
)

// Distinct is the estimated number of distinct values in the union of the
// HyperLogLog sketches blobs. Nil blobs (SQL NULLs) are skipped; with no
// sketch at all it is 0, as a distinct count of nothing is.
func Distinct(blobs [][]byte) (int64, error) {
	var union *hyperloglog.Sketch
	for i, b := range blobs {
		if b == nil {
			continue
		}
		sk := new(hyperloglog.Sketch)
		if err := sk.UnmarshalBinary(b); err != nil {
			return 0, fmt.Errorf("element %d is not a distinct metric's sketch: %w", i+1, err)
		}
		if union == nil {
			union = sk
			continue
		}
		if err := union.Merge(sk); err != nil {
			return 0, fmt.Errorf("element %d: %w", i+1, err)
		}
	}
	if union == nil {
		return 0, nil
	}
	return int64(min(union.Estimate(), math.MaxInt64)), nil
}

// Quantile is the value at quantile q (0 ≤ q ≤ 1) of the DDSketches blobs
// merged: within the sketches' relative accuracy of the value at that rank
// among all the values they counted. Nil blobs (SQL NULLs) are skipped;
// ok is false when the sketches hold no value.
func Quantile(blobs [][]byte, q float64) (v float64, ok bool, err error) {
	if !(q >= 0 && q <= 1) {
		return 0, false, fmt.Errorf("q is %v: it must be between 0 and 1", q)
	}
	var merged *ddsketch.DDSketch
	for i, b := range blobs {
		if b == nil {
			continue
		}
		sk, err := decodeDDSketch(b)
		if err != nil {
			return 0, false, fmt.Errorf("element %d is not a quantile metric's sketch: %w", i+1, err)
		}
		if merged == nil {
			merged = sk
			continue
		}
		if err := merged.MergeWith(sk); err != nil {
			return 0, false, fmt.Errorf("element %d has another relative accuracy (%v, not %v) and does not merge with the others",
				i+1, sk.RelativeAccuracy(), merged.RelativeAccuracy())
		}
	}
	if merged == nil || merged.IsEmpty() {
		return 0, false, nil
	}
	v, err = merged.GetValueAtQuantile(q)
	if err != nil {
		return 0, false, err
	}
	return v, true, nil
}

// decodeDDSketch decodes what DDSketch.Encode(&b, false) wrote. The
// library's decoder is lenient in ways that matter here: it drops a
// store's decoding error (a truncated sketch would decode as a smaller
// one), and its dense stores allocate the whole range between the lowest
// and the highest bin a blob names. So the stores are sparse (a map: no
// bigger than the blob) and report their errors, and counts must be
// numbers of values.
func decodeDDSketch(b []byte) (*ddsketch.DDSketch, error) {
	var storeErr error
	provider := func() store.Store { return checkedStore{store.NewSparseStore(), &storeErr} }
	sk, err := ddsketch.DecodeDDSketch(b, provider, nil)
	if err == nil {
		err = storeErr
	}
	if err != nil {
		return nil, err
	}
	if ra := sk.RelativeAccuracy(); !(ra > 0 && ra < 1) {
		return nil, fmt.Errorf("relative accuracy %v is not between 0 and 1", ra)
	}
	valid := true
	sk.ForEach(func(_, count float64) bool { // the zero bin's count too
		valid = count >= 0 && !math.IsInf(count, 1)
		return !valid
	})
	if !valid {
		return nil, errors.New("a bin's count is not a count of values")
	}
	return sk, nil
}

// checkedStore records the first decoding error of its store, which
// DDSketch's decoder drops.
type checkedStore struct {
	store.Store
	err *error
}

func (s checkedStore) DecodeAndMergeWith(b *[]byte, mode enc.SubFlag) error {
	err := s.Store.DecodeAndMergeWith(b, mode)
	if err != nil && *s.err == nil {
		*s.err = err
	}
	return err
}
