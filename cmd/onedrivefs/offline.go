package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onedrivefs/onedrivefs/remote"
)

// treeStoreFile is the persisted copy of the drive's tree, in the cache dir
// (metastore, wired by fs/store.go).
const treeStoreFile = "tree.db"

// lastDriveFile, in the profile's directory, remembers the id of the drive
// last mounted, so that a mount can find its cache dir (named after the
// drive) while the service is unreachable.
const lastDriveFile = "last-drive-id"

// reachDrive asks the service for the drive's id. When the service is
// unreachable (remote.ErrOffline) it answers the id remembered from the last
// mount with offline set: the mount then starts from its local copy of the
// tree. needID says the caller needs the id (no --cache-dir). A network
// that answers nothing is found as during the mount (the client's watcher,
// remote/unanswered.go): the mount starts offline after about a second
// instead of waiting for ever.
func reachDrive(ctx context.Context, e *env, client *remote.Client, cfgDir string, needID bool) (id string, offline bool, err error) {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go client.WatchUnanswered(wctx)
	drive, err := client.Drive(ctx)
	if err == nil {
		if werr := os.WriteFile(filepath.Join(cfgDir, lastDriveFile), []byte(drive.ID+"\n"), 0o600); werr != nil {
			fmt.Fprintf(e.stderr, "onedrivefs: remembering the drive's id for offline mounts failed: %v\n", werr)
		}
		return drive.ID, false, nil
	}
	if !errors.Is(err, remote.ErrOffline) {
		return "", false, err
	}
	b, rerr := os.ReadFile(filepath.Join(cfgDir, lastDriveFile))
	id = strings.TrimSpace(string(b))
	if id == "" && needID {
		return "", false, fmt.Errorf("%w (and no earlier mount of this profile to start offline from: %v)", err, rerr)
	}
	return id, true, nil
}
