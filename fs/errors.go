package fs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"

	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote"
)

// Errors the filesystem itself produces, before or instead of a request to
// the service. Each has exactly one errno in errnoOf.
var (
	errNotEmpty     = errors.New("directory not empty")
	errIsDir        = errors.New("is a directory")
	errNotDir       = errors.New("not a directory")
	errExists       = errors.New("file exists")
	errReadOnly     = errors.New("read-only mount")
	errNotPermitted = errors.New("operation not permitted on OneDrive")
	errNotSupported = errors.New("operation not supported")
	errInvalid      = errors.New("invalid argument")
	errNameTooLong  = errors.New("name too long")
	errNoEntry      = errors.New("no such file or directory")
	errRemoved      = errors.New("the item was deleted")
	errNoXattr      = errors.New("no such attribute")
	errXattrRange   = errors.New("attribute value larger than the buffer")
	errCrossMount   = errors.New("not in this mount")
)

// errnoOf maps an error to the errno the kernel receives. It is the only
// place where errors become errnos: handlers return Go errors and go through
// FS.errno, which logs and calls this. Order matters: the first match wins,
// so the filesystem's own sentinels come before the service's, and a bare
// syscall.Errno (from the local staging disk, for example) is passed through
// before falling back to EIO.
func errnoOf(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0

	// The caller gave up (FUSE interrupt) or a deadline passed.
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT

	// Local POSIX rules.
	case errors.Is(err, errNotEmpty):
		return syscall.ENOTEMPTY
	case errors.Is(err, errIsDir):
		return syscall.EISDIR
	case errors.Is(err, errNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, errExists):
		return syscall.EEXIST
	case errors.Is(err, errReadOnly):
		return syscall.EROFS
	case errors.Is(err, errNotPermitted):
		return syscall.EPERM
	case errors.Is(err, errNotSupported):
		return syscall.ENOTSUP
	case errors.Is(err, errInvalid):
		return syscall.EINVAL
	case errors.Is(err, errNameTooLong):
		return syscall.ENAMETOOLONG
	case errors.Is(err, errNoEntry), errors.Is(err, errRemoved):
		return syscall.ENOENT
	case errors.Is(err, errNoXattr):
		return syscall.ENODATA
	case errors.Is(err, errXattrRange):
		return syscall.ERANGE
	case errors.Is(err, errCrossMount):
		return syscall.EXDEV
	case errors.Is(err, errShareReadOnly):
		return syscall.EACCES
	case errors.Is(err, errStale):
		return syscall.ESTALE

	// The copy-job tracker is gone (the mount is stopping).
	case errors.Is(err, copyjob.ErrClosed):
		return syscall.ESHUTDOWN

	// The service's answers (remote's sentinels).
	case errors.Is(err, remote.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, remote.ErrConflict):
		return syscall.EEXIST
	case errors.Is(err, remote.ErrInvalidName):
		return syscall.EINVAL
	case errors.Is(err, remote.ErrQuotaExceeded):
		return syscall.ENOSPC
	case errors.Is(err, remote.ErrForbidden):
		return syscall.EACCES
	case errors.Is(err, remote.ErrUnauthorized), errors.Is(err, remote.ErrNotSignedIn),
		errors.Is(err, remote.ErrLoginRequired):
		return syscall.EACCES
	case errors.Is(err, remote.ErrPreconditionFailed):
		return syscall.ESTALE
	case errors.Is(err, remote.ErrThrottled):
		return syscall.EAGAIN
	case errors.Is(err, remote.ErrNotSupported):
		return syscall.ENOTSUP
	case errors.Is(err, remote.ErrInvalidRange), errors.Is(err, remote.ErrHashMismatch),
		errors.Is(err, remote.ErrResyncRequired):
		return syscall.EIO

	// Local files (staging, content cache).
	case errors.Is(err, os.ErrNotExist):
		return syscall.EIO // a staging file vanished: not the user's ENOENT
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, syscall.EINTR:
			return errno
		}
	}
	return syscall.EIO
}

// errno logs err once, where it is mapped, and returns its errno. Expected
// outcomes (a missing name, an interrupted call, a non-empty directory) are
// logged at debug level; the rest as warnings. op names the operation and
// args add context (path, item id); never pass URLs or tokens.
func (f *FS) errno(ctx context.Context, op string, err error, args ...any) syscall.Errno {
	e := errnoOf(err)
	if e == 0 {
		return 0
	}
	if errors.Is(err, errNotKeptOffline) {
		f.log.Log(ctx, slog.LevelWarn, op+": not possible offline (OneDrive is unreachable, and changes in folders shared from other drives are not kept until it is back)",
			append(args, "errno", e.Error())...)
		return e
	}
	if errors.Is(err, remote.ErrOffline) {
		// Not a failure of the mount: say what it means for the user.
		f.log.Log(ctx, slog.LevelWarn, op+": not available offline (OneDrive is unreachable and this is not in the local cache)",
			append(args, "errno", e.Error())...)
		return e
	}
	level := slog.LevelWarn
	switch e {
	case syscall.ENOENT, syscall.EINTR, syscall.ENOTEMPTY, syscall.EEXIST, syscall.ENODATA,
		syscall.ERANGE, syscall.EISDIR, syscall.ENOTDIR, syscall.EROFS, syscall.ENOTSUP, syscall.EXDEV:
		level = slog.LevelDebug
	}
	f.log.Log(ctx, level, op+" failed", append(args, "errno", e.Error(), "err", err)...)
	return e
}
