package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/oauth2"
)

// TokenStore keeps the OAuth2 token of a profile in token.json in the config
// directory.
//
// The file is created with mode 0600 inside a directory created with mode
// 0700, and every write is atomic (a temporary file in the same directory,
// fsync, rename, fsync of the directory): a reader sees the old token or the
// new one, never part of one.
//
// Like ssh with its private keys, Load refuses a token file that other users
// can read or write, or that another user owns, instead of silently fixing
// it: the token may already have leaked, and the user should know. The error
// says how to fix it (chmod 600, or sign in again, which rewrites the file).
//
// A TokenStore holds no state besides its path; several processes may share
// one file (the last write wins, and both tokens stay valid).
type TokenStore struct {
	path   string
	logger *slog.Logger
}

// NewTokenStore returns the store of token.json in config directory dir.
// logger (nil → discard) receives warnings about directory permissions.
func NewTokenStore(dir string, logger *slog.Logger) *TokenStore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &TokenStore{path: filepath.Join(dir, tokenFileName), logger: logger}
}

// Path is the path of the token file.
func (s *TokenStore) Path() string { return s.path }

// Load reads the token. A missing file gives an error matching
// ErrNotSignedIn (and fs.ErrNotExist); a file open to other users gives one
// matching ErrInsecureTokenFile.
func (s *TokenStore) Load() (*oauth2.Token, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (no token at %s): %w", ErrNotSignedIn, s.path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading the token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the token file %s is not a regular file", s.path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, but it must be readable by you alone; "+
			"run 'chmod 600 %s' (or 'onedrivefs login' again, which rewrites it), and sign out "+
			"and in again if someone may have copied it", ErrInsecureTokenFile, s.path, perm, s.path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%w: %s belongs to user id %d, not to you (%d)",
			ErrInsecureTokenFile, s.path, st.Uid, os.Geteuid())
	}
	var tok oauth2.Token
	if err := json.NewDecoder(f).Decode(&tok); err != nil {
		// The decoder's message may quote the file, so it is not included.
		return nil, fmt.Errorf("the token file %s is damaged; run 'onedrivefs login' again", s.path)
	}
	if tok.AccessToken == "" && tok.RefreshToken == "" {
		return nil, fmt.Errorf("the token file %s holds no token; run 'onedrivefs login' again", s.path)
	}
	return &tok, nil
}

// Save writes tok atomically with mode 0600, creating the config directory
// (mode 0700) if needed.
func (s *TokenStore) Save(tok *oauth2.Token) error {
	if tok == nil || (tok.AccessToken == "" && tok.RefreshToken == "") {
		return errors.New("saving the token: empty token")
	}
	data, err := json.MarshalIndent(tok, "", "  ")
	if err != nil {
		return fmt.Errorf("saving the token: %w", err)
	}
	if err := EnsureConfigDir(filepath.Dir(s.path), s.logger); err != nil {
		return err
	}
	if err := writeFileAtomic(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the token: %w", err)
	}
	return nil
}

// Remove deletes the token file. A missing file gives an error matching
// ErrNotSignedIn.
func (s *TokenStore) Remove() error {
	err := os.Remove(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w (no token at %s): %w", ErrNotSignedIn, s.path, err)
	}
	if err != nil {
		return fmt.Errorf("removing the token: %w", err)
	}
	return syncDir(filepath.Dir(s.path))
}

// EnsureConfigDir creates dir and its missing parents with mode 0700. An
// existing dir is left as it is (it may be a directory the user chose and
// shares on purpose), but if other users can enter it, logger gets a warning:
// the token file itself stays 0600 either way.
func EnsureConfigDir(dir string, logger *slog.Logger) error {
	if dir == "" {
		return errors.New("no config directory: set HOME or XDG_CONFIG_HOME, or pass --config-dir")
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating the config directory: %w", err)
		}
		// MkdirAll applies the umask; make the mode exact.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("creating the config directory: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("config directory: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("the config directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && logger != nil {
		logger.Warn("the config directory is open to other users; consider 'chmod 700' on it",
			"dir", dir, "mode", fmt.Sprintf("%#o", perm))
	}
	return nil
}

// writeFileAtomic replaces path with data: it writes a temporary file in the
// same directory with mode perm, syncs it, renames it over path and syncs the
// directory. On failure the temporary file is removed and path is untouched.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	closed = true
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
