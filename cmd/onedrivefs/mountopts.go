package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Where mount settings come from, strongest first: the command line's flags,
// its -o options (mount(8)'s way), the profile's config file, the defaults.

// configFileName is the per-profile config file, in the profile's directory.
// Its syntax is a small subset of TOML: `name = value` lines, where name is
// a mount flag (cache-size, poll-interval…) and value a "quoted string", a
// bare word, true or false; # starts a comment.
const configFileName = "config.toml"

// configKeys are the flags a config file may set.
var configKeys = []string{"cache-dir", "cache-size", "read-ahead", "poll-interval", "read-only", "allow-other", "log-level", "log-file", "debug-fuse",
	"shared-with-me", "no-shared-with-me", "sync-tree"}

// mountOptionFlags maps the -o options that carry a setting to their flags.
var mountOptionFlags = map[string]string{
	"allow_other":   "allow-other",
	"ro":            "read-only",
	"read_only":     "read-only",
	"cache_size":    "cache-size",
	"read_ahead":    "read-ahead",
	"cache_dir":     "cache-dir",
	"config_dir":    "config-dir",
	"poll_interval": "poll-interval",
	"log_file":      "log-file",
	"log_level":     "log-level",
	"debug_fuse":    "debug-fuse",
	"sync_tree":     "sync-tree",
	"profile":       "profile",
}

// ignoredMountOptions are generic options mount(8), fstab and systemd use
// that mean nothing to onedrivefs (nodev and nosuid are FUSE's defaults).
var ignoredMountOptions = map[string]bool{
	"rw": true, "defaults": true, "dev": true, "nodev": true, "suid": true, "nosuid": true,
	"exec": true, "noexec": true, "auto": true, "noauto": true, "user": true, "users": true,
	"nouser": true, "owner": true, "group": true, "nofail": true, "_netdev": true,
	"atime": true, "noatime": true, "relatime": true, "norelatime": true, "strictatime": true,
	"nodiratime": true, "async": true, "sync": true, "lazytime": true, "nolazytime": true,
}

// resolve merges -o options and the profile's config file into the flags
// the command line left alone, then checks the values, so that a mistake is
// reported (exit 2) before anything starts, --daemon's parent included.
func (o *mountOptions) resolve(e *env, fset *pflag.FlagSet) error {
	fromCmdline := map[string]bool{}
	fset.Visit(func(f *pflag.Flag) { fromCmdline[f.Name] = true })
	for _, list := range o.options {
		for _, opt := range strings.Split(list, ",") {
			if err := applyMountOption(fset, strings.TrimSpace(opt), fromCmdline); err != nil {
				return err
			}
		}
	}
	dir, err := profileDir(e, o.configDir, o.profile)
	if err != nil {
		return err
	}
	if err := applyConfigFile(filepath.Join(dir, configFileName), fset); err != nil {
		return err
	}
	if err := o.level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return usagef("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	if o.maxBytes, err = parseSize(o.cacheSize); err != nil {
		return usagef("--cache-size: %v", err)
	}
	if o.readAheadBytes, err = parseSize(o.readAhead); err != nil {
		return usagef("--read-ahead: %v", err)
	}
	if o.readAheadBytes == 0 {
		o.readAheadBytes = -1 // the kernel's default
	}
	if o.noSharedWithMe {
		o.sharedWithMe = ""
	}
	if strings.ContainsAny(o.sharedWithMe, "/\x00") || o.sharedWithMe == "." || o.sharedWithMe == ".." {
		return usagef("--shared-with-me %q: a folder name, without /", o.sharedWithMe)
	}
	if o.pollInterval == 0 {
		return usagef("--poll-interval must not be 0 (use a negative value to disable polling)")
	}
	if o.logFile != "" {
		if o.logFile, err = filepath.Abs(o.logFile); err != nil {
			return err
		}
	}
	return nil
}

// applyMountOption applies one -o option; a flag given on the command line
// wins over it.
func applyMountOption(fset *pflag.FlagSet, opt string, fromCmdline map[string]bool) error {
	if opt == "" || ignoredMountOptions[opt] || hasPrefixAny(opt, "x-", "comment=") {
		return nil
	}
	name, value, hasValue := strings.Cut(opt, "=")
	flagName, ok := mountOptionFlags[name]
	if !ok {
		return usagef("unknown mount option %q (known: allow_other, ro, cache_size=, read_ahead=, cache_dir=, config_dir=, poll_interval=, log_file=, log_level=, debug_fuse, profile=)", opt)
	}
	if fromCmdline[flagName] {
		return nil
	}
	f := fset.Lookup(flagName)
	isBool := f.Value.Type() == "bool"
	switch {
	case isBool && !hasValue:
		value = "true"
	case !isBool && !hasValue:
		return usagef("mount option %s needs a value (%s=VALUE)", name, name)
	}
	if err := fset.Set(flagName, value); err != nil {
		return usagef("mount option %s: %v", opt, err)
	}
	return nil
}

var configKeyRE = regexp.MustCompile(`^[a-z][a-z-]*$`)

// applyConfigFile sets, from the config file at path, every flag the
// command line and -o left alone. A missing file is no error.
func applyConfigFile(path string, fset *pflag.FlagSet) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("the config file: %w", err)
	}
	defer f.Close()
	allowed := map[string]bool{}
	for _, k := range configKeys {
		allowed[k] = true
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		key, value, err := parseConfigLine(sc.Text())
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, a...))
		}
		switch {
		case err != nil:
			return bad("%v", err)
		case key == "":
			continue
		case !allowed[key]:
			return bad("unknown setting %q (settings: %s)", key, strings.Join(configKeys, ", "))
		}
		fl := fset.Lookup(key)
		if fl.Changed {
			continue // the command line or -o said otherwise
		}
		if err := fset.Set(key, value); err != nil {
			return bad("%s: %v", key, err)
		}
		fl.Changed = false // set by the file, not the command line
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// parseConfigLine reads one line of a config file: "" for a blank line or
// a comment.
func parseConfigLine(line string) (key, value string, err error) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", nil
	}
	if line[0] == '[' {
		return "", "", errors.New("sections are not supported: one setting per line, name = value")
	}
	k, v, ok := strings.Cut(line, "=")
	key = strings.TrimSpace(k)
	if !ok || !configKeyRE.MatchString(key) {
		return "", "", errors.New(`expected name = value (e.g. cache-size = "20G")`)
	}
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) {
		end := strings.LastIndex(v, `"`)
		if end == 0 {
			return "", "", errors.New("unterminated string")
		}
		if rest := strings.TrimSpace(v[end+1:]); rest != "" && rest[0] != '#' {
			return "", "", fmt.Errorf("unexpected %q after the value", rest)
		}
		value, err = strconv.Unquote(v[:end+1])
		if err != nil {
			return "", "", fmt.Errorf("bad string %s", v[:end+1])
		}
		return key, value, nil
	}
	if i := strings.Index(v, "#"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	if v == "" {
		return "", "", fmt.Errorf("%s has no value", key)
	}
	return key, v, nil
}

// mountHelperArgs recognises the command line of mount(8)'s FUSE helper,
// `onedrivefs SOURCE MOUNTPOINT -o OPTIONS` (what `mount -t
// fuse.onedrivefs SOURCE DIR` and fstab make mount.fuse3 run), and returns
// it as `mount --daemon [--profile SOURCE] -o OPTIONS -- MOUNTPOINT`.
// SOURCE is the profile; "onedrivefs", "default" or "none" mean the
// default profile. mount.fuse3 expects its program to go to the background
// once mounted, as --daemon does.
func mountHelperArgs(root *cobra.Command, args []string) ([]string, bool) {
	// mount.fuse3 always passes an absolute mount point and -o (at least
	// "rw,dev,suid"): a mistyped command with an argument is not taken for
	// this form.
	if len(args) < 4 || strings.HasPrefix(args[0], "-") || !filepath.IsAbs(args[1]) || args[2] != "-o" {
		return nil, false
	}
	if commandNames(root)[args[0]] {
		return nil, false
	}
	out := []string{"mount", "--daemon"}
	switch src := args[0]; src {
	case "onedrivefs", defaultProfileName, "none":
	default:
		out = append(out, "--profile", src)
	}
	out = append(out, args[2:]...)
	return append(out, "--", args[1]), true
}
