package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
)

const loginDescription = `Sign in to OneDrive with the OAuth2 device-code flow: onedrivefs prints a web
page and a code; open the page on any device, enter the code and sign in. With
--browser, sign in in a browser on this computer instead (authorization code
with PKCE; for organizations that block device codes). The token is stored in
token.json (mode 0600) and the endpoints in profile.json, both in the
profile's directory, for 'onedrivefs mount' to use.

Several accounts: --profile NAME keeps a sign-in apart from the default one
(in profiles/NAME under the config directory); 'onedrivefs profiles' lists
them and 'onedrivefs mount --profile NAME DIR' mounts one.

Flags left out keep the value saved by the previous login of the profile
(--client-id included), else the default.

For the real service, register your own application in Microsoft Entra
(App registrations: accounts in any directory and personal accounts; redirect
URI http://localhost for a public client; enable "Allow public client flows";
delegated Microsoft Graph permissions Files.ReadWrite.All and offline_access)
and pass its id with --client-id: login without one prints these steps.
onedrivefs has no application of its own; its default id only works with
'onedrivefs fake-server'.`

func newLoginCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "login [flags]",
		Short: "sign in (device code, or --browser) and store the token",
		Long:  loginDescription,
		Args:  noArgs,
	}
	fset := c.Flags()
	configDir := fset.String("config-dir", "",
		"`DIR` holding the profiles (default $XDG_CONFIG_HOME/onedrivefs or ~/.config/onedrivefs)")
	profileName := fset.StringP("profile", "p", "", "`NAME` of the profile to sign in to (several accounts; default: the default profile)")
	graphURL := fset.String("graph-url", "",
		"Microsoft Graph base `URL`, version included (default "+remote.DefaultGraphURL+"; for the fake server http://HOST:PORT/v1.0)")
	authURL := fset.String("auth-url", "",
		"identity service base `URL`, before /TENANT/oauth2/v2.0 (default "+remote.DefaultAuthURL+")")
	tenant := fset.String("tenant", "",
		"`TENANT`: common (any account), consumers (personal), organizations (work or school), or a tenant id or domain (default "+remote.DefaultTenant+")")
	clientID := fset.String("client-id", "",
		"application (client) `ID` of your app registration, a public client; remembered in the profile")
	driveID := fset.String("drive-id", "",
		"`ID` of the drive to mount; empty means your own drive (/me/drive)")
	browser := fset.Bool("browser", false,
		"sign in in a web browser (authorization code with PKCE, redirected to a listener on localhost) instead of with a device code")
	site := fset.String("site", "",
		"mount the default document library of the SharePoint site `NAME` (its URL name, title or id; see 'onedrivefs drives')")
	_ = c.RegisterFlagCompletionFunc("profile", completeProfiles(e))
	c.RunE = func(c *cobra.Command, args []string) error {
		ctx := c.Context()
		if *site != "" && *driveID != "" {
			return usagef("--site and --drive-id both name the drive to mount: give one")
		}
		dir, err := profileDir(e, *configDir, *profileName)
		if err != nil {
			return err
		}
		logger := loginLogger(e)

		p, err := remote.LoadProfile(dir)
		if err != nil {
			if !errors.Is(err, remote.ErrNotSignedIn) {
				logger.Warn("ignoring the saved profile", "err", err)
			}
			p = remote.Profile{}
		}
		fset.Visit(func(f *pflag.Flag) {
			switch f.Name {
			case "graph-url":
				p.GraphURL = *graphURL
			case "auth-url":
				p.AuthURL = *authURL
			case "tenant":
				p.Tenant = *tenant
			case "client-id":
				p.ClientID = *clientID
			case "drive-id":
				p.DriveID = *driveID
			}
		})
		p = p.WithDefaults()
		if err := p.Validate(); err != nil {
			fmt.Fprintf(e.stderr, "onedrivefs login: %v\n", err)
			return errUsage
		}
		if p.UsesPlaceholderClientID() {
			// The real service refuses the placeholder: say how to get an
			// id of one's own rather than fail at the service.
			fmt.Fprint(e.stderr, registerAppGuide)
			return errors.New("no client id: register an application (above) and pass its id with --client-id")
		}
		// Fail on an unusable config directory before the user signs in.
		if err := remote.EnsureConfigDir(dir, logger); err != nil {
			return err
		}

		var tok *oauth2.Token
		if *browser {
			tok, err = browserLogin(ctx, e, p)
		} else {
			tok, err = remote.DeviceLogin(ctx, p.OAuthConfig(), e.stdout)
		}
		if err != nil {
			return err
		}
		// The token first: if the profile cannot be saved, the old one still
		// describes a consistent (if outdated) sign-in.
		store := remote.NewTokenStore(dir, logger)
		if err := store.Save(tok); err != nil {
			return err
		}
		if *site != "" {
			tokens := remote.NewTokenSource(ctx, p.OAuthConfig(), store, tok, logger)
			client, err := remote.New(remote.Config{GraphURL: p.GraphURL, Tokens: tokens, Logger: logger})
			if err != nil {
				return err
			}
			if p.DriveID, err = siteDriveID(ctx, client, *site, e.stdout); err != nil {
				return fmt.Errorf("signed in, but the profile was not changed: %w", err)
			}
		}
		if err := remote.SaveProfile(dir, p, logger); err != nil {
			return err
		}

		fmt.Fprintf(e.stdout, "\nSigned in.\n  profile: %s\n  token:   %s (readable by you alone)\n",
			remote.ProfilePath(dir), store.Path())
		describeDrive(ctx, e, p, remote.NewTokenSource(ctx, p.OAuthConfig(), store, tok, logger), logger)
		fmt.Fprintf(e.stdout, "Mount with: onedrivefs mount%s MOUNTPOINT\n", profileFlags(*configDir, *profileName))
		return nil
	}
	return c
}

// profileFlags repeats the --config-dir and --profile given, for a command
// line to suggest.
func profileFlags(configDir, profile string) string {
	s := ""
	if configDir != "" {
		s += " --config-dir " + configDir
	}
	if profile != "" && profile != defaultProfileName {
		s += " --profile " + profile
	}
	return s
}

// describeDrive prints the drive the new sign-in reaches, as a first check
// that the endpoints and the token work. A failure is reported but does not
// undo the sign-in: the service may be briefly unreachable.
func describeDrive(ctx context.Context, e *env, p remote.Profile, tokens *remote.TokenSource, logger *slog.Logger) {
	client, err := remote.New(remote.Config{GraphURL: p.GraphURL, DriveID: p.DriveID, Tokens: tokens, Logger: logger})
	if err == nil {
		var d *remote.Drive
		if d, err = client.Drive(ctx); err == nil {
			fmt.Fprintf(e.stdout, "  drive:   %s (%s), %s used of %s\n", d.ID, d.DriveType,
				humanBytes(d.Quota.Used), humanBytes(d.Quota.Total))
			return
		}
	}
	fmt.Fprintf(e.stderr, "onedrivefs login: signed in, but the drive did not answer: %v\n", err)
}

// humanBytes renders n in binary units (1.5 GiB).
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newLogoutCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "logout [flags]",
		Short: "delete the stored token",
		Long: "Sign out: delete the stored token of a profile. The profile (endpoints, client id,\n" +
			"drive) is kept, so a later 'onedrivefs login' signs in to the same service.",
		Args: noArgs,
	}
	configDir := c.Flags().String("config-dir", "",
		"`DIR` holding the profiles (default $XDG_CONFIG_HOME/onedrivefs or ~/.config/onedrivefs)")
	profileName := c.Flags().StringP("profile", "p", "", "`NAME` of the profile to sign out of (default: the default profile)")
	_ = c.RegisterFlagCompletionFunc("profile", completeProfiles(e))
	c.RunE = func(c *cobra.Command, args []string) error {
		dir, err := profileDir(e, *configDir, *profileName)
		if err != nil {
			return err
		}
		store := remote.NewTokenStore(dir, nil)
		err = store.Remove()
		if errors.Is(err, remote.ErrNotSignedIn) {
			fmt.Fprintf(e.stdout, "Not signed in (no token in %s).\n", dir)
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Signed out: removed %s.\n", store.Path())
		fmt.Fprintln(e.stdout, "A running mount stops working when its current access token expires (within about an hour).")
		fmt.Fprintln(e.stdout, "The sign-in is deleted here only; to revoke onedrivefs's access on the service, remove the app from your account's app permissions.")
		return nil
	}
	return c
}

// loginLogger reports warnings (such as a config directory open to other
// users) on stderr.
func loginLogger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}
