package fs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestErrnoTable checks the one mapping from errors to errnos, including
// wrapped errors and the service's typed errors.
func TestErrnoTable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("doing something: %w", err) }
	cases := []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{context.Canceled, syscall.EINTR},
		{wrap(context.DeadlineExceeded), syscall.ETIMEDOUT},
		{errNotEmpty, syscall.ENOTEMPTY},
		{errIsDir, syscall.EISDIR},
		{errNotDir, syscall.ENOTDIR},
		{wrap(errExists), syscall.EEXIST},
		{errReadOnly, syscall.EROFS},
		{errNotPermitted, syscall.EPERM},
		{errNotSupported, syscall.ENOTSUP},
		{errInvalid, syscall.EINVAL},
		{errNameTooLong, syscall.ENAMETOOLONG},
		{errRemoved, syscall.ENOENT},
		{errNoXattr, syscall.ENODATA},
		{errXattrRange, syscall.ERANGE},
		{wrap(errCrossMount), syscall.EXDEV},
		{wrap(errStale), syscall.ESTALE},
		{copyjob.ErrClosed, syscall.ESHUTDOWN},
		{&nameError{Name: "a:b", Rule: "x"}, syscall.EINVAL},
		{wrap(remote.ErrNotFound), syscall.ENOENT},
		{&remote.Error{StatusCode: 404, Code: "itemNotFound"}, syscall.ENOENT},
		{&remote.Error{StatusCode: 409, Code: "nameAlreadyExists"}, syscall.EEXIST},
		{remote.ErrConflict, syscall.EEXIST},
		{remote.ErrInvalidName, syscall.EINVAL},
		{remote.ErrQuotaExceeded, syscall.ENOSPC},
		{&remote.Error{StatusCode: 507, Code: "quotaLimitReached"}, syscall.ENOSPC},
		{remote.ErrForbidden, syscall.EACCES},
		{remote.ErrUnauthorized, syscall.EACCES},
		{remote.ErrNotSignedIn, syscall.EACCES},
		{remote.ErrPreconditionFailed, syscall.ESTALE},
		{remote.ErrThrottled, syscall.EAGAIN},
		{remote.ErrNotSupported, syscall.ENOTSUP},
		{remote.ErrHashMismatch, syscall.EIO},
		{remote.ErrResyncRequired, syscall.EIO},
		{&remote.Error{StatusCode: 500, Code: "generalException"}, syscall.EIO},
		{os.ErrNotExist, syscall.EIO},
		{wrap(syscall.ENOSPC), syscall.ENOSPC},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, syscall.EIO},
		{errors.New("anything else"), syscall.EIO},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, errnoOf(c.err), "%v", c.err)
	}
}

func TestTransient(t *testing.T) {
	assert.True(t, transient(&remote.Error{StatusCode: 503}))
	assert.True(t, transient(remote.ErrThrottled))
	assert.True(t, transient(&net.OpError{Op: "dial", Err: errors.New("refused")}))
	assert.False(t, transient(context.Canceled))
	assert.False(t, transient(&remote.Error{StatusCode: 507, Code: "quotaLimitReached"}))
	assert.False(t, transient(&remote.Error{StatusCode: 400, Code: "invalidRequest"}))
}
