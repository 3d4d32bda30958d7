package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The share command's mistakes are refused before it touches a mount.
func TestShareCommandUsage(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runCLI(t, t.TempDir(), "share")
	assert.Equal(t, 2, code, errOut)
	code, _, errOut = runCLI(t, t.TempDir(), "share", "--expires", "next tuesday", dir)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--expires")
	code, _, errOut = runCLI(t, t.TempDir(), "share", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "not in an onedrivefs mount")
}
