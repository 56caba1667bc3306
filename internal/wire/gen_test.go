package wire

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
	"github.com/amqp1kit/amqp1kit/internal/wire/internal/specgen"
)

// TestGeneratedCodeIsCurrent regenerates spec_gen.go from the specification's XML and
// fails when the committed file differs (someone edited it by hand, or changed the
// generator without running go generate).
func TestGeneratedCodeIsCurrent(t *testing.T) {
	dir := specgen.DefaultSpecDir
	for _, f := range specgen.Files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			peers.Missing(t, "AMQP 1.0 specification XML missing (%v): install the Debian package amqp-specs to check spec_gen.go", err)
		}
	}
	want, err := specgen.Generate(dir)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	got, err := os.ReadFile("spec_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(gl), len(wl)) {
		if gl[i] != wl[i] {
			t.Fatalf("spec_gen.go is stale (run go generate ./internal/wire); first difference at line %d:\ncommitted: %s\ngenerated: %s", i+1, gl[i], wl[i])
		}
	}
	t.Fatalf("spec_gen.go is stale (run go generate ./internal/wire): %d lines committed, %d generated", len(gl), len(wl))
}

func TestGeneratorRefusesMissingSpec(t *testing.T) {
	if _, err := specgen.Generate(t.TempDir()); err == nil {
		t.Fatal("Generate of an empty directory succeeded")
	}
}
