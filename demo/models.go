package demo

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// models are the semantic layer's model of the demo's web shop
// (models/webshop.yml): explores events and sessions over the events table.
//
//go:embed models/*.yml
var models embed.FS

// Models is the web shop's model files, as a file system (package semantic
// reads it with LoadFS).
func Models() fs.FS {
	sub, err := fs.Sub(models, "models")
	if err != nil {
		panic(err) // the embedded directory is there
	}
	return sub
}

// WriteModels writes the web shop's model files into dir (created when
// missing), replacing files of the same names: `sluice demo` serves them
// from <data_dir>/models when the config names no models of its own.
func WriteModels(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo models: %w", err)
	}
	return fs.WalkDir(Models(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Models(), path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, path), b, 0o644); err != nil {
			return fmt.Errorf("demo models: %w", err)
		}
		return nil
	})
}
