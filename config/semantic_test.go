package config

import (
	"os"
	"path/filepath"
	"testing"
)

// semantic.models is relative to the config file, and must be a directory.
func TestSemanticModels(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "sluice.yaml")
	c, err := Parse(file, []byte("semantic: {models: ./models}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "models"); c.Semantic.Models != want {
		t.Errorf("semantic.models = %q, want %q", c.Semantic.Models, want)
	}
	if c, err := Parse(file, []byte("data_dir: ./d\n")); err != nil || c.Semantic.Models != "" {
		t.Errorf("no semantic section: %q, %v", c.Semantic.Models, err)
	}
	checkErrors(t, "semantic:\n  models: ./nowhere\n", []wantErr{{2, 11, "semantic.models", `semantic.models "./nowhere" is not a directory`, "relative to this file"}})
	checkErrors(t, "semantic:\n  model: ./models\n", []wantErr{{2, 3, "semantic.model", `unknown key "model"`, "did you mean models?"}})
}
