package main

import (
	"context"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary serve the loopback helper the way the
// odbench binary does (benchLoopback starts os.Executable()).
func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == loopbackArg {
		if err := serveLoopback(os.Args[2], os.Args[3], os.Args[4]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSamples(t *testing.T) {
	s := samples{3, 1, 2, 10}
	assert.Equal(t, 2.5, s.median())
	assert.Equal(t, 2.0, samples{2, 1, 3}.median())
	assert.True(t, math.IsNaN(samples{}.median()))
	assert.Equal(t, 10.0, s.quantile(1))
	assert.Equal(t, 1.0, s.quantile(0))
	assert.Equal(t, 3.0, s.quantile(0.75))
	assert.Equal(t, "2.50 (1.00–10.00)", s.format(2))
	assert.Equal(t, "7", samples{7}.format(0))
	assert.Equal(t, "7", samples{7, 7.01}.format(0), "no spread printed when it rounds away")
	assert.Equal(t, "–", samples{}.format(1))
	assert.Equal(t, samples{2, 0.5}, ratios(samples{4, 1, 9}, samples{2, 2}), "pairs run by run, as many as both have")
}

func TestShellJoin(t *testing.T) {
	assert.Equal(t, `odbench -quick -out '' -mount-env 'A=1 B=2' 'it'\''s'`,
		shellJoin([]string{"odbench", "-quick", "-out", "", "-mount-env", "A=1 B=2", "it's"}))
}

func TestTable(t *testing.T) {
	r := &report{}
	tb := r.table("T", "a note", "a", "b")
	tb.add("1", "2")
	var sb strings.Builder
	tb.write(&sb)
	assert.Equal(t, "### T\n\na note\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n", sb.String())
}

// TestQuickRun runs the whole driver in quick mode against the real binary:
// it must mount, run every scenario and write a report. No figure is
// checked (they are read, never asserted).
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts and runs every scenario")
	}
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		if os.Getenv("ONEDRIVEFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("/dev/fuse: %v", err)
		}
		t.Skipf("cannot mount: /dev/fuse: %v", err)
	} else {
		f.Close()
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "onedrivefs")
	out, err := exec.Command("go", "build", "-o", bin, "../onedrivefs").CombinedOutput()
	require.NoError(t, err, "%s", out)
	report := filepath.Join(dir, "BENCH.md")
	err = runBench(context.Background(), []string{"-bin", bin, "-quick", "-runs", "1", "-out", report, "-work", filepath.Join(dir, "work")}, io.Discard)
	require.NoError(t, err)
	md, err := os.ReadFile(report)
	require.NoError(t, err)
	for _, want := range []string{"## Targets", "### 1. Copy inside the mount", "### 2. Sequential read",
		"### 3. Random 4 KiB reads", "### 5. The local FUSE limit", "### 6. Sequential write", "### 7. Appending 2 bytes",
		"### 8. Metadata", "### 10. cp -r", "### 12. Peak RSS", "daemon RSS < 150 MiB", "requests per GiB"} {
		assert.Contains(t, string(md), want)
	}
	assert.False(t, isMounted(filepath.Join(dir, "work", "mnt")), "a mount was left behind")
}
