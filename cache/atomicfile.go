package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tempInfix marks the temporary files of writeFileAtomic: "<name>.tmp-<random>".
// Loaders treat any file containing it as a torn write and delete it.
const tempInfix = ".tmp-"

// writeFileAtomic replaces dir/name with data so that a reader (or a process
// restarted after a crash) sees either the old content or the new one, never a
// mix: the data goes to a temporary file in the same directory, which is
// fsynced, then renamed over the target. With syncDirectory the directory is
// fsynced too, which makes the rename itself durable.
func writeFileAtomic(dir, name string, data []byte, syncDirectory bool) (err error) {
	tmp, err := os.CreateTemp(dir, name+tempInfix+"*")
	if err != nil {
		return fmt.Errorf("cache: create temp for %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("cache: chmod %s: %w", tmp.Name(), err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("cache: write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("cache: fsync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("cache: close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("cache: rename %s: %w", name, err)
	}
	if syncDirectory {
		return syncDir(dir)
	}
	return nil
}

// syncDir fsyncs a directory, making creations, renames and removals of its
// entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cache: open dir %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cache: fsync dir %s: %w", dir, err)
	}
	return nil
}

// isTemp reports whether a directory entry is a leftover temporary file.
func isTemp(name string) bool { return strings.Contains(name, tempInfix) }
