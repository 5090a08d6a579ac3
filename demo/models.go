package demo

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// models are the semantic layer's model of the demo's web shop
// (models/webshop.yml): explores events and sessions over the events table;
// dashboards are its dashboard (dashboards/webshop.yml), tiles of that model.
var (
	//go:embed models/*.yml
	models embed.FS
	//go:embed dashboards/*.yml
	dashboards embed.FS
)

// Models is the web shop's model files, as a file system (package semantic
// reads it with LoadFS).
func Models() fs.FS { return sub(models, "models") }

// Dashboards is the web shop's dashboard files (package dashboard reads it
// with LoadFS).
func Dashboards() fs.FS { return sub(dashboards, "dashboards") }

func sub(f embed.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the embedded directory is there
	}
	return s
}

// WriteModels writes the web shop's model files into dir (created when
// missing), replacing files of the same names: `sluice demo` serves them
// from <data_dir>/models when the config names no models of its own.
func WriteModels(dir string) error { return write(Models(), dir, "demo models") }

// WriteDashboards writes the web shop's dashboard into dir (created when
// missing), replacing a file of the same name: `sluice demo` serves it from
// <data_dir>/dashboards when the config names no dashboards of its own.
func WriteDashboards(dir string) error { return write(Dashboards(), dir, "demo dashboards") }

func write(files fs.FS, dir, what string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, path), b, 0o644); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}
