package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Profiles: one sign-in (endpoints, client id, drive, token) and one mount
// configuration per account. The default profile lives in the config
// directory itself, as it always has; a named one in profiles/NAME under it:
//
//	$XDG_CONFIG_HOME/onedrivefs/{profile.json,token.json,config.toml}
//	$XDG_CONFIG_HOME/onedrivefs/profiles/work/{profile.json,token.json,config.toml}

// defaultProfileName names the profile in the config directory itself.
const defaultProfileName = "default"

// profilesSubdir holds the named profiles, one directory each.
const profilesSubdir = "profiles"

// profileNameRE is what a profile name may be: a file name with no surprises.
var profileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// configBase is --config-dir made absolute, or the default config directory.
func configBase(e *env, flagValue string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	if dir := remote.ConfigDir(e.getenv); dir != "" {
		return dir, nil
	}
	return "", errors.New("cannot tell where the config directory is: set HOME or pass --config-dir")
}

// profileDir is the directory of profile name ("" or "default": the config
// directory itself) under --config-dir or the default config directory.
func profileDir(e *env, configDirFlag, name string) (string, error) {
	base, err := configBase(e, configDirFlag)
	if err != nil {
		return "", err
	}
	if name == "" || name == defaultProfileName {
		return base, nil
	}
	if !profileNameRE.MatchString(name) {
		return "", usagef("--profile %q: a profile name is letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	return filepath.Join(base, profilesSubdir, name), nil
}

func newProfilesCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "profiles [flags]",
		Short: "list the profiles (accounts) signed in to",
		Long: `List the profiles in the config directory: their name, whether they hold a
sign-in, the service and the drive. 'login --profile NAME' creates one;
'mount --profile NAME DIR' mounts it. The default profile is the one used
when no --profile is given.`,
		Args: noArgs,
	}
	configDir := c.Flags().String("config-dir", "", "`DIR` holding the profiles (default $XDG_CONFIG_HOME/onedrivefs or ~/.config/onedrivefs)")
	c.RunE = func(c *cobra.Command, args []string) error {
		base, err := configBase(e, *configDir)
		if err != nil {
			return err
		}
		names, err := profileNames(base)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintf(e.stdout, "no profiles in %s: run 'onedrivefs login' (or 'login --profile NAME')\n", base)
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROFILE\tSIGNED IN\tSERVICE\tDRIVE\tDIRECTORY")
		for _, n := range names {
			dir, _ := profileDir(e, base, n)
			p, perr := remote.LoadProfile(dir)
			signedIn := "no"
			if _, err := os.Stat(filepath.Join(dir, "token.json")); err == nil {
				signedIn = "yes"
			}
			service, drive := "-", "(own drive)"
			if perr == nil {
				service = p.GraphURL
				if p.DriveID != "" {
					drive = p.DriveID
				}
			} else {
				service = "(no profile.json)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, signedIn, service, drive, dir)
		}
		return tw.Flush()
	}
	return c
}

// profileNames lists the profiles in the config directory base: "default"
// when it holds a sign-in, then the named ones.
func profileNames(base string) ([]string, error) {
	var names []string
	if _, err := os.Stat(remote.ProfilePath(base)); err == nil {
		names = append(names, defaultProfileName)
	}
	entries, err := os.ReadDir(filepath.Join(base, profilesSubdir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var named []string
	for _, d := range entries {
		if d.IsDir() && profileNameRE.MatchString(d.Name()) && d.Name() != defaultProfileName {
			named = append(named, d.Name())
		}
	}
	sort.Strings(named)
	return append(names, named...), nil
}

// completeProfiles completes --profile with the profiles of the config
// directory (--config-dir if given).
func completeProfiles(e *env) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		dir, _ := c.Flags().GetString("config-dir")
		base, err := configBase(e, dir)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, _ := profileNames(base)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// registerAppGuide is shown when login has no client id for the real
// service: the application registration, step by step.
const registerAppGuide = `onedrivefs has no application of its own registered with Microsoft: sign-in
needs the id of one you register (free, a few minutes, once):

  1. Open https://entra.microsoft.com > Applications > App registrations >
     New registration. Name: onedrivefs. Supported account types: "Accounts in
     any organizational directory and personal Microsoft accounts" (or your
     organization only).
  2. Redirect URI: platform "Public client/native (mobile & desktop)", URI
     http://localhost  (used by 'login --browser'). Register.
  3. Authentication: "Allow public client flows" = Yes (used by the device
     code sign-in). Save.
  4. API permissions > Add a permission > Microsoft Graph > Delegated
     permissions: Files.ReadWrite.All and offline_access. Add.
  5. Copy the "Application (client) ID" from Overview and run
       onedrivefs login --client-id THAT-ID
     (add --browser if your organization blocks device-code sign-in).
     The id is remembered in the profile: later logins need no --client-id.

`

// browserLogin signs in through a web browser (authorization code and
// PKCE): it prints the sign-in page, opens it when a desktop session is
// there to open it in, and waits for the redirect.
func browserLogin(ctx context.Context, e *env, p remote.Profile) (*oauth2.Token, error) {
	return remote.BrowserLogin(ctx, p.OAuthConfig(), func(u string) {
		fmt.Fprintf(e.stdout, "To sign in, open this page in a browser on this computer:\n\n    %s\n\n", u)
		if openBrowser(ctx, e, u) {
			fmt.Fprintln(e.stdout, "(opened in your browser)")
		}
		fmt.Fprintln(e.stdout, "Waiting for the sign-in (Ctrl-C to stop)…")
	})
}

// openBrowser asks the desktop to open u, when there is a desktop session
// and xdg-open; it reports whether it did.
func openBrowser(ctx context.Context, e *env, u string) bool {
	if e.getenv("DISPLAY") == "" && e.getenv("WAYLAND_DISPLAY") == "" {
		return false
	}
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, path, u).Run() == nil
}
