package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Business drives (and SharePoint libraries) answer in their own forms
// (docs/graph-contract.md §11): folders without cTag, delta at the root
// only, no parentReference.path in delta, copy monitors that answer 200 with
// the SharePoint-shaped body. TestMountBusinessDrive runs a representative
// set of the mount tests, unchanged, against a fake whose drives are of type
// business: listing, reading, writing, renaming, remote changes, the
// journal across a kill, server-side copies by cp and by attribute, and
// shared folders (polled by relisting, as Business has no folder delta).
func TestMountBusinessDrive(t *testing.T) {
	tests := []struct {
		name string
		run  func(*testing.T)
	}{
		{"ListStatCat", TestMountListStatCat},
		{"WriteAppendTruncateTouch", TestMountWriteAppendTruncateTouch},
		{"MkdirRmdirMvRm", TestMountMkdirRmdirMvRm},
		{"ReplaceByRenameAndCopyInside", TestMountReplaceByRenameAndCopyInside},
		{"RemoteChangesAppear", TestMountRemoteChangesAppear},
		{"LargeFileRoundTrip", TestMountLargeFileRoundTrip},
		{"KillAfterCloseThenRemount", TestMountKillAfterCloseThenRemount},
		{"CopyCpLargeFileIsServerSide", TestCopyCpLargeFileIsServerSide},
		{"CopyCpRecursiveTree", TestCopyCpRecursiveTree},
		{"CopyXattrFolderTree", TestCopyXattrFolderTree},
		{"SharedFolderShortcut", TestMountSharedFolderShortcut},
		{"SharedCopyOutServerSide", TestMountSharedCopyOutServerSide},
	}
	mountDriveType = "business"
	t.Cleanup(func() { mountDriveType = "" })
	t.Run("the fake is Business", func(t *testing.T) {
		env := newMountEnv(t, graphtest.Options{})
		rc, err := remote.New(remote.Config{GraphURL: env.srv.GraphURL(),
			Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: env.srv.IssueToken(), Expiry: time.Now().Add(time.Hour)})})
		require.NoError(t, err)
		d, err := rc.Drive(t.Context())
		require.NoError(t, err)
		require.True(t, d.IsBusiness(), "drive type %q", d.DriveType)
	})
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}
