package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/onedrivefs/onedrivefs/remote"
)

const drivesDescription = `List the drives the signed-in account can reach: its own drive, the document
libraries of the SharePoint sites it follows, and with --search those of the
sites whose name matches; the one the profile mounts is starred. Mount another
with 'onedrivefs login --drive-id ID' (or 'onedrivefs login --site NAME' for a
site's default library; --profile keeps it apart from your own drive), then
'onedrivefs mount'.`

func newDrivesCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "drives [flags]",
		Short: "list the drives and SharePoint libraries the account can reach",
		Long:  drivesDescription,
		Args:  noArgs,
	}
	fset := c.Flags()
	configDir := fset.String("config-dir", "",
		"`DIR` holding the profiles (default $XDG_CONFIG_HOME/onedrivefs or ~/.config/onedrivefs)")
	profileName := fset.StringP("profile", "p", "", "`NAME` of the profile (account) to ask (default: the default profile)")
	search := fset.String("search", "", "also list the libraries of the SharePoint sites whose name or title contains `TEXT`")
	_ = c.RegisterFlagCompletionFunc("profile", completeProfiles(e))
	c.RunE = func(c *cobra.Command, args []string) error {
		ctx := c.Context()
		dir, err := profileDir(e, *configDir, *profileName)
		if err != nil {
			return err
		}
		logger := loginLogger(e)
		p, tokens, err := remote.LoadSignIn(ctx, dir, logger)
		if err != nil {
			return err
		}
		client, err := remote.New(remote.Config{GraphURL: p.GraphURL, Tokens: tokens, Logger: logger})
		if err != nil {
			return err
		}
		drives, err := client.ReachableDrives(ctx, *search)
		if err != nil {
			return err
		}
		printDrives(e.stdout, drives, p.DriveID)
		return nil
	}
	return c
}

// printDrives writes one line per drive; the one the profile mounts is
// marked with a star ("" mounts the user's own drive, the first).
func printDrives(w io.Writer, drives []remote.ReachableDrive, mounted string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tDRIVE ID\tTYPE\tNAME\tOWNER OR SITE")
	for i, rd := range drives {
		mark := ""
		if rd.Drive.ID == mounted || (mounted == "" && i == 0 && rd.Site == nil) {
			mark = "*"
		}
		owner := rd.Drive.Owner
		if rd.Site != nil {
			owner = fmt.Sprintf("%s (site %s)", rd.Site.DisplayName, rd.Site.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, rd.Drive.ID, rd.Drive.DriveType, rd.Drive.Name, owner)
	}
	_ = tw.Flush()
}

// siteDriveID finds the default document library of the SharePoint site
// called name (login --site), and says which it picked.
func siteDriveID(ctx context.Context, client *remote.Client, name string, out io.Writer) (string, error) {
	site, lib, err := client.FindSiteDrive(ctx, name)
	var choice *remote.SiteChoiceError
	switch {
	case errors.As(err, &choice):
		return "", fmt.Errorf("%w; pass the site's id to --site, or a library's id to --drive-id ('onedrivefs drives --search %s' lists them)", err, name)
	case errors.Is(err, remote.ErrNotFound):
		return "", fmt.Errorf("no SharePoint site is called %q ('onedrivefs drives --search TEXT' lists the sites you can reach)", name)
	case errors.Is(err, remote.ErrForbidden):
		return "", fmt.Errorf("the site %q exists, but you may not open its document library", name)
	case err != nil:
		return "", err
	}
	fmt.Fprintf(out, "  site:    %s (%s), library %q\n", site.DisplayName, site.ID, lib.Name)
	return lib.ID, nil
}
