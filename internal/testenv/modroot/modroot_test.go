package modroot_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/internal/testenv/modroot"
)

func TestRootAndFile(t *testing.T) {
	root, err := modroot.Root()
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	p, err := modroot.File("scripts/test.sh")
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "scripts", "test.sh"), p)
	_, err = modroot.File("scripts/no-such-script.sh")
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestNoModuleAbove(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := modroot.Root()
	require.ErrorContains(t, err, "no go.mod")
}

// A nested module's go.mod (containers/, cmd/) is passed over: the root is the
// directory whose go.mod declares the repository's module.
func TestNestedModulePassedOver(t *testing.T) {
	top := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(top, "go.mod"), []byte("module "+modroot.Path+"\n\ngo 1.26.0\n"), 0o644))
	nested := filepath.Join(top, "containers", "qpidd")
	require.NoError(t, os.MkdirAll(nested, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(top, "containers", "go.mod"), []byte("module "+modroot.Path+"/containers\n"), 0o644))
	t.Chdir(nested)
	root, err := modroot.Root()
	require.NoError(t, err)
	want, err := filepath.EvalSymlinks(top)
	require.NoError(t, err)
	got, err := filepath.EvalSymlinks(root)
	require.NoError(t, err)
	require.Equal(t, want, got)
}
