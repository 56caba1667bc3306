package modroot_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/internal/modroot"
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
