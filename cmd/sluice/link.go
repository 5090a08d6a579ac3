package main

// The external linker is asked not to export the binary's symbols. Go passes
// -rdynamic, which put DuckDB's ~60,000 C++ symbols into the dynamic symbol
// table: 6.5 MB that the dynamic loader read in full at every start, and that
// stayed resident in every sluice process. Nothing loads code into sluice
// that would look them up (DuckDB's extension loading is switched off, see
// warehouse.Open).

/*
#cgo LDFLAGS: -Wl,--no-export-dynamic
*/
import "C"
