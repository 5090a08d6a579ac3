package lake

import "github.com/sluice-data/sluice"

// EncodeFile is what a flush does for one partition of a table whose schema
// record is schema: encode its rows as a Parquet file. For
// benchmarks outside the package (lake_test may import packages that import
// lake).
func EncodeFile(t Table, schema sluice.Schema, lines [][]byte) ([]byte, error) {
	a := &Archiver{o: ArchiverOptions{Table: t}, schema: schema}
	return a.encode(lines)
}
