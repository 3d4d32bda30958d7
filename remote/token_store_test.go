package remote

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

func sampleToken(n string) *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  "ACCESS-SECRET-" + n,
		TokenType:    "Bearer",
		RefreshToken: "REFRESH-SECRET-" + n,
		Expiry:       time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC),
	}
}

func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestTokenStoreSaveCreatesPrivateDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config", "onedrivefs")
	store := NewTokenStore(dir, nil)
	require.NoError(t, store.Save(sampleToken("1")))

	assert.Equal(t, filepath.Join(dir, "token.json"), store.Path())
	assert.Equal(t, fs.FileMode(0o700), perm(t, dir))
	assert.Equal(t, fs.FileMode(0o700), perm(t, filepath.Dir(dir)), "created parents are private too")
	assert.Equal(t, fs.FileMode(0o600), perm(t, store.Path()))

	got, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-1", got.AccessToken)
	assert.Equal(t, "REFRESH-SECRET-1", got.RefreshToken)
	assert.Equal(t, "Bearer", got.TokenType)
	assert.True(t, got.Expiry.Equal(sampleToken("1").Expiry))
}

func TestTokenStoreSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	store := NewTokenStore(dir, nil)
	require.NoError(t, store.Save(sampleToken("1")))
	require.NoError(t, store.Save(sampleToken("2")))

	assert.Equal(t, []string{"token.json"}, dirNames(t, dir), "no temporary file is left behind")
	data, err := os.ReadFile(store.Path())
	require.NoError(t, err)
	var onDisk oauth2.Token
	require.NoError(t, json.Unmarshal(data, &onDisk), "the file holds one complete JSON document")
	assert.Equal(t, "ACCESS-SECRET-2", onDisk.AccessToken)
}

func TestTokenStoreSaveReplacesLooseFileWithPrivateOne(t *testing.T) {
	dir := t.TempDir()
	store := NewTokenStore(dir, nil)
	require.NoError(t, os.WriteFile(store.Path(), []byte(`{"access_token":"old"}`), 0o644))
	require.NoError(t, store.Save(sampleToken("1")))
	assert.Equal(t, fs.FileMode(0o600), perm(t, store.Path()))
}

func TestTokenStoreFailedSaveLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	store := NewTokenStore(dir, nil)
	// A directory where the token file should be: the final rename fails.
	require.NoError(t, os.Mkdir(store.Path(), 0o700))
	require.Error(t, store.Save(sampleToken("1")))
	assert.Equal(t, []string{"token.json"}, dirNames(t, dir), "the temporary file was removed")
	fi, err := os.Stat(store.Path())
	require.NoError(t, err)
	assert.True(t, fi.IsDir(), "the target is untouched")
}

func TestTokenStoreLoadRefusesLooseModes(t *testing.T) {
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o602} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			store := NewTokenStore(dir, nil)
			require.NoError(t, store.Save(sampleToken("1")))
			require.NoError(t, os.Chmod(store.Path(), mode))

			_, err := store.Load()
			require.ErrorIs(t, err, ErrInsecureTokenFile)
			assert.Contains(t, err.Error(), "chmod 600 "+store.Path())
			assertNoSecrets(t, err.Error())
		})
	}
}

func TestTokenStoreLoadErrors(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		_, err := NewTokenStore(t.TempDir(), nil).Load()
		assert.ErrorIs(t, err, ErrNotSignedIn)
		assert.ErrorIs(t, err, fs.ErrNotExist)
	})
	t.Run("damaged", func(t *testing.T) {
		store := NewTokenStore(t.TempDir(), nil)
		require.NoError(t, os.WriteFile(store.Path(), []byte(`{"access_token":"ACCESS-SECRET-9`), 0o600))
		_, err := store.Load()
		require.ErrorContains(t, err, "damaged")
		assertNoSecrets(t, err.Error())
	})
	t.Run("empty token", func(t *testing.T) {
		store := NewTokenStore(t.TempDir(), nil)
		require.NoError(t, os.WriteFile(store.Path(), []byte(`{}`), 0o600))
		_, err := store.Load()
		require.ErrorContains(t, err, "holds no token")
	})
	t.Run("not a regular file", func(t *testing.T) {
		store := NewTokenStore(t.TempDir(), nil)
		require.NoError(t, os.Mkdir(store.Path(), 0o700))
		_, err := store.Load()
		require.ErrorContains(t, err, "not a regular file")
	})
}

func TestTokenStoreSaveRejectsEmptyToken(t *testing.T) {
	store := NewTokenStore(t.TempDir(), nil)
	assert.Error(t, store.Save(nil))
	assert.Error(t, store.Save(&oauth2.Token{}))
	_, err := os.Stat(store.Path())
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestTokenStoreRemove(t *testing.T) {
	dir := t.TempDir()
	store := NewTokenStore(dir, nil)
	require.NoError(t, SaveProfile(dir, DefaultProfile(), nil))
	require.NoError(t, store.Save(sampleToken("1")))

	require.NoError(t, store.Remove())
	assert.Equal(t, []string{"profile.json"}, dirNames(t, dir), "the profile is kept")
	assert.ErrorIs(t, store.Remove(), ErrNotSignedIn, "a second removal reports no token")
}

func TestEnsureConfigDir(t *testing.T) {
	t.Run("existing loose dir is kept and warned about", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "shared")
		require.NoError(t, os.Mkdir(dir, 0o755))
		require.NoError(t, os.Chmod(dir, 0o755))
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		require.NoError(t, EnsureConfigDir(dir, logger))
		assert.Equal(t, fs.FileMode(0o755), perm(t, dir))
		assert.Contains(t, logs.String(), "open to other users")
		assert.Contains(t, logs.String(), "mode=0755")
	})
	t.Run("private dir, no warning", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.Chmod(dir, 0o700))
		var logs bytes.Buffer
		require.NoError(t, EnsureConfigDir(dir, slog.New(slog.NewTextHandler(&logs, nil))))
		assert.Empty(t, logs.String())
	})
	t.Run("file in the way", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f")
		require.NoError(t, os.WriteFile(path, nil, 0o600))
		assert.ErrorContains(t, EnsureConfigDir(path, nil), "not a directory")
	})
	t.Run("no dir", func(t *testing.T) {
		assert.ErrorContains(t, EnsureConfigDir("", nil), "--config-dir")
	})
}
