package cache

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStateSaveLoad(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenState(dir, nil)
	require.NoError(t, err)
	_, ok := s.Load("deltaLink")
	assert.False(t, ok)

	require.NoError(t, s.Save("deltaLink", "https://graph.example/delta?token=abc"))
	require.NoError(t, s.Save("driveId", "D1"))
	require.NoError(t, s.Save("driveId", "D2"))
	v, ok := s.Load("driveId")
	assert.True(t, ok)
	assert.Equal(t, "D2", v)

	again, err := OpenState(dir, nil)
	require.NoError(t, err)
	v, _ = again.Load("deltaLink")
	assert.Equal(t, "https://graph.example/delta?token=abc", v)
	v, _ = again.Load("driveId")
	assert.Equal(t, "D2", v)

	require.NoError(t, again.Delete("driveId"))
	require.NoError(t, again.Delete("missing"))
	third, err := OpenState(dir, nil)
	require.NoError(t, err)
	_, ok = third.Load("driveId")
	assert.False(t, ok)
	_, ok = third.Load("deltaLink")
	assert.True(t, ok)
}

func TestStateCorruptOrTorn(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"deltaLink":`), 0o600))
	torn := filepath.Join(dir, stateFile+tempInfix+"9")
	require.NoError(t, os.WriteFile(torn, []byte(`{}`), 0o600))
	log, logs := logBuffer()
	s, err := OpenState(dir, log)
	require.NoError(t, err, "a corrupt state is not fatal")
	_, ok := s.Load("deltaLink")
	assert.False(t, ok)
	assert.Contains(t, logs.String(), "corrupt state file")
	assert.NoFileExists(t, torn)
	require.NoError(t, s.Save("k", "v"))
	again, err := OpenState(dir, nil)
	require.NoError(t, err)
	v, _ := again.Load("k")
	assert.Equal(t, "v", v)
}

func TestStateSaveFailureKeepsMemory(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenState(dir, nil)
	require.NoError(t, err)
	require.NoError(t, s.Save("k", "v1"))
	// A directory in the file's place makes the rename fail, even for root.
	path := filepath.Join(dir, stateFile)
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.MkdirAll(filepath.Join(path, "x"), 0o700))
	assert.Error(t, s.Save("k", "v2"))
	v, _ := s.Load("k")
	assert.Equal(t, "v1", v, "memory keeps the last value that reached the disk")
	left, err := filepath.Glob(filepath.Join(dir, "*"+tempInfix+"*"))
	require.NoError(t, err)
	assert.Empty(t, left, "no temp file left behind")
}
