// Package modroot finds the files of this repository (scripts, test peers) from tests
// and test helpers: the module root is the nearest directory at or above the working
// directory that holds go.mod, which for go test is the package's directory inside the
// repository.
package modroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Root returns the module root.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// File returns the absolute path of rel (slash-separated, relative to the module
// root), which must exist.
func File(rel string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", fmt.Errorf("finding %s: %w", rel, err)
	}
	p := filepath.Join(root, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}
