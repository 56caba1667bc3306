// Package modroot finds the files of this repository (scripts, test peers) from tests
// and test helpers: the repository root is the nearest directory at or above the
// working directory whose go.mod declares the module github.com/amqp1kit/amqp1kit
// (for go test the working directory is the package's, inside the repository; the
// containers and cmd modules nested in it have go.mod files of their own).
package modroot

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Path is the module path of the repository's root module.
const Path = "github.com/amqp1kit/amqp1kit"

// Root returns the repository root: the directory of the root module's go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	for {
		if declaresRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s at or above the working directory", Path)
		}
		dir = parent
	}
}

// declaresRoot reports whether the go.mod file at path declares module Path.
func declaresRoot(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) == 2 && string(fields[0]) == "module" {
			return string(bytes.Trim(fields[1], `"`)) == Path
		}
	}
	return false
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
