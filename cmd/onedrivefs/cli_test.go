package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runCLI runs a command line in this process with HOME set to home and
// returns the exit status, stdout and stderr.
func runCLI(t *testing.T, home string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, e, args)
	return code, stdout.String(), stderr.String()
}

func TestVersionFlagAndCommand(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, _ := runCLI(t, t.TempDir(), args...)
		assert.Equal(t, 0, code, "%v", args)
		assert.Regexp(t, `^onedrivefs \S+ go1\.\S+ \S+/\S+\n$`, out, "%v", args)
	}
}

func TestUsageErrorsAreShortAndExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"mount", "--bogus", "/x"}, "onedrivefs mount: unknown flag: --bogus"},
		{[]string{"mount"}, "exactly one MOUNTPOINT"},
		{[]string{"mount", "a", "b"}, "exactly one MOUNTPOINT"},
		{[]string{"cp", "a", "b", "c"}, "one SRC and one DEST, not 3 paths (a b c)"},
		{[]string{"cp", "a"}, "SRC and DEST are needed"},
		{[]string{"jobs", "-n", "x", "/"}, "invalid argument \"x\""},
		{[]string{"mont", "x"}, `unknown command "mont" (did you mean "mount"?)`},
		{[]string{"status", "a", "b"}, "at most one MOUNTPOINT"},
		{[]string{"help", "nosuch"}, `no command "nosuch"`},
		{[]string{"mount", "--log-level", "loud", "/x"}, `--log-level "loud"`},
		{[]string{"mount", "-o", "frobnicate", "/x"}, `unknown mount option "frobnicate"`},
		{[]string{"mount", "-o", "cache_size", "/x"}, "mount option cache_size needs a value"},
		{[]string{"mount", "--profile", "../etc", "/x"}, `--profile "../etc"`},
	} {
		code, out, errOut := runCLI(t, t.TempDir(), tc.args...)
		assert.Equal(t, 2, code, "%v: %s", tc.args, errOut)
		assert.Contains(t, errOut, tc.want, "%v", tc.args)
		assert.Contains(t, errOut, "Usage: onedrivefs", "%v", tc.args)
		assert.Less(t, strings.Count(errOut, "\n"), 5, "a short usage, not the whole help: %v\n%s", tc.args, errOut)
		assert.Empty(t, out, "%v", tc.args)
	}
	code, _, errOut := runCLI(t, t.TempDir())
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "Available Commands:")
}

func TestFlagsAfterArguments(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	// The flags are read wherever they are: the mount gets as far as the
	// mount point (exit 1), which an unparsed --read-only would not.
	code, _, errOut := runCLI(t, t.TempDir(), "mount", missing, "--read-only", "--cache-size", "1G")
	assert.Equal(t, 1, code, errOut)
	assert.Contains(t, errOut, "does not exist")
}

func TestHelpForms(t *testing.T) {
	for _, args := range [][]string{{"help", "mount"}, {"mount", "--help"}, {"mount", "-h"}} {
		code, out, _ := runCLI(t, t.TempDir(), args...)
		assert.Equal(t, 0, code, "%v", args)
		assert.Contains(t, out, "onedrivefs mount [flags] MOUNTPOINT", "%v", args)
		assert.Contains(t, out, "--daemon", "%v", args)
		assert.Contains(t, out, "--read-only", "%v", args)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "__start_onedrivefs", "zsh": "#compdef onedrivefs", "fish": "complete -c onedrivefs"} {
		code, out, errOut := runCLI(t, t.TempDir(), "completion", shell)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, marker, shell)
	}
}

func TestManPages(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runCLI(t, t.TempDir(), "gen-man", dir)
	require.Equal(t, 0, code, errOut)
	for _, name := range []string{"onedrivefs", "onedrivefs-mount", "onedrivefs-login", "onedrivefs-status", "onedrivefs-jobs", "onedrivefs-cp", "onedrivefs-profiles"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".1"))
		if assert.NoError(t, err, name) {
			assert.Contains(t, string(b), ".TH \""+strings.ToUpper(name)+"\" \"1\"", name)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "onedrivefs-mount.1"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "allow_other")
	_, err = os.Stat(filepath.Join(dir, "onedrivefs-gen-man.1"))
	assert.True(t, os.IsNotExist(err), "no page for the hidden build command")
}

// resolveMount parses a mount command line and resolves its settings.
func resolveMount(t *testing.T, home string, args ...string) (*mountOptions, error) {
	t.Helper()
	e := &env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}}
	o := &mountOptions{}
	c := mountCmd(e, o)
	require.NoError(t, c.Flags().Parse(args))
	return o, o.resolve(e, c.Flags())
}

func TestMountOptionsMapToFlags(t *testing.T) {
	home := t.TempDir()
	o, err := resolveMount(t, home, "-o", "rw,dev,suid,ro,allow_other,cache_size=20G,poll_interval=1m,_netdev,nofail,noauto,user,x-systemd.automount,log_level=debug,cache_dir=/c,config_dir=/cfg,profile=work", "/mnt")
	require.NoError(t, err)
	assert.True(t, o.readOnly)
	assert.True(t, o.allowOther)
	assert.Equal(t, "20G", o.cacheSize)
	assert.Equal(t, time.Minute, o.pollInterval)
	assert.Equal(t, "debug", o.logLevel)
	assert.Equal(t, "/c", o.cacheDir)
	assert.Equal(t, "/cfg", o.configDir)
	assert.Equal(t, "work", o.profile)

	// The command line wins over -o.
	o, err = resolveMount(t, home, "--cache-size", "1G", "-o", "cache_size=20G", "/mnt")
	require.NoError(t, err)
	assert.Equal(t, "1G", o.cacheSize)
}

func TestConfigFile(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, ".config", "onedrivefs", "profiles", "work")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, configFileName), []byte(`# mount settings of the work profile
cache-size = "20G"   # a quoted string
poll-interval = 2m
read-only = true

log-level = "warn"
`), 0o600))

	o, err := resolveMount(t, home, "--profile", "work", "/mnt")
	require.NoError(t, err)
	assert.Equal(t, "20G", o.cacheSize)
	assert.Equal(t, 2*time.Minute, o.pollInterval)
	assert.True(t, o.readOnly)
	assert.Equal(t, "warn", o.logLevel)

	// Flags and -o override the file; the default profile has no file.
	o, err = resolveMount(t, home, "-p", "work", "--log-level", "debug", "-o", "cache_size=1G", "/mnt")
	require.NoError(t, err)
	assert.Equal(t, "debug", o.logLevel)
	assert.Equal(t, "1G", o.cacheSize)
	assert.Equal(t, 2*time.Minute, o.pollInterval)
	o, err = resolveMount(t, home, "/mnt")
	require.NoError(t, err)
	assert.Equal(t, "10G", o.cacheSize)

	for content, want := range map[string]string{
		"cache-size = 1G\nfrobnicate = 1\n": "config.toml:2: unknown setting \"frobnicate\"",
		"[mount]\n":                         "config.toml:1: sections are not supported",
		"read-only = maybe\n":               "config.toml:1: read-only",
		"cache-size = \"20G\n":              "config.toml:1: unterminated string",
		"just words\n":                      "config.toml:1: expected name = value",
		"poll-interval =\n":                 "config.toml:1: poll-interval has no value",
		"profile = other\n":                 "unknown setting \"profile\"",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, configFileName), []byte(content), 0o600))
		_, err := resolveMount(t, home, "--profile", "work", "/mnt")
		if assert.Error(t, err, content) {
			assert.Contains(t, err.Error(), want, content)
		}
	}
}

func TestMountHelperArgs(t *testing.T) {
	root := newRootCmd(&env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, stdin: strings.NewReader(""), getenv: func(string) string { return "" }})
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"default", "/mnt/od", "-o", "rw,dev,suid"}, []string{"mount", "--daemon", "-o", "rw,dev,suid", "--", "/mnt/od"}},
		{[]string{"onedrivefs", "/mnt/od", "-o", "ro"}, []string{"mount", "--daemon", "-o", "ro", "--", "/mnt/od"}},
		{[]string{"work", "/mnt/work", "-o", "allow_other,cache_size=20G"}, []string{"mount", "--daemon", "--profile", "work", "-o", "allow_other,cache_size=20G", "--", "/mnt/work"}},
		{[]string{"mount", "/mnt/od", "-o", "ro"}, nil},   // a command
		{[]string{"mont", "x"}, nil},                      // a typo
		{[]string{"work", "relative", "-o", "ro"}, nil},   // mount.fuse3 passes absolute paths
		{[]string{"work", "/mnt/od", "--read-only"}, nil}, // no -o
	} {
		got, ok := mountHelperArgs(root, tc.in)
		assert.Equal(t, tc.want != nil, ok, "%v", tc.in)
		assert.Equal(t, tc.want, got, "%v", tc.in)
	}
}

func TestCompletesProfileNames(t *testing.T) {
	cfg := t.TempDir()
	for _, d := range []string{"profiles/work", "profiles/home", "profiles/.hidden"} {
		require.NoError(t, os.MkdirAll(filepath.Join(cfg, d), 0o700))
	}
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "profile.json"), []byte("{}"), 0o600))
	for _, cmd := range []string{"mount", "login", "logout"} {
		code, out, errOut := runCLI(t, t.TempDir(), "__complete", cmd, "--config-dir", cfg, "--profile", "")
		require.Equal(t, 0, code, errOut)
		assert.Equal(t, []string{"default", "home", "work", ":4"}, lines(out), cmd)
	}
}
