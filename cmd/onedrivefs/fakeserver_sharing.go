package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// The fake-server flags that set up more than the one drive: further users,
// SharePoint sites, shares between users (with a shortcut), and the retired
// sharedWithMe. Users, sites and shares
// persist with the drive; on a restart with the same flags, what exists
// already is left as it is.

type sharingFlags struct {
	users, userSeeds, sites, shares []string
	sharedRetired                   *bool
}

func addSharingFlags(fset *pflag.FlagSet) *sharingFlags {
	sf := &sharingFlags{}
	fset.StringArrayVar(&sf.users, "user", nil, "add a user with a drive of their own: `ID[:EMAIL[:NAME]]` (ID: 16 hex characters or any name; repeatable); tokens: POST /_fake/users/ID/tokens")
	fset.StringArrayVar(&sf.userSeeds, "user-seed", nil, "import the local tree into a user's drive when it is empty: `ID=DIR` (repeatable)")
	fset.StringArrayVar(&sf.sites, "site", nil, "add a SharePoint site with one document library: `NAME[:MEMBER,MEMBER…]` (members: user ids or emails; repeatable)")
	fset.StringArrayVar(&sf.shares, "share", nil, "share a folder or file: `OWNER:PATH:WITH:ROLE[:SHORTCUT]` (OWNER and WITH: \"me\" (the default user), a user id or an email; PATH in the owner's drive; ROLE read or write, SHORTCUT the name of a shortcut added to WITH's root; repeatable)")
	sf.sharedRetired = fset.Bool("shared-with-me-retired", false, "GET /me/drive/sharedWithMe answers an empty list, as Microsoft announced for after November 2026")
	return sf
}

// configure applies the flags that are options of the fake.
func (sf *sharingFlags) configure(o *graphtest.Options) {
	o.Forms.SharedWithMeRetired = *sf.sharedRetired
}

// validate checks the flags' syntax before anything starts.
func (sf *sharingFlags) validate() error {
	for _, u := range sf.users {
		if strings.TrimSpace(strings.Split(u, ":")[0]) == "" {
			return fmt.Errorf("--user %q: the id is missing", u)
		}
	}
	for _, us := range sf.userSeeds {
		if id, dir, ok := strings.Cut(us, "="); !ok || id == "" || dir == "" {
			return fmt.Errorf("--user-seed %q: use ID=DIR", us)
		}
	}
	for _, s := range sf.sites {
		if strings.Split(s, ":")[0] == "" {
			return fmt.Errorf("--site %q: the name is missing", s)
		}
	}
	for _, sh := range sf.shares {
		parts := strings.Split(sh, ":")
		if len(parts) < 4 || len(parts) > 5 || parts[1] == "" || parts[2] == "" {
			return fmt.Errorf("--share %q: use OWNER:PATH:WITH:ROLE[:SHORTCUT]", sh)
		}
		if parts[3] != "read" && parts[3] != "write" {
			return fmt.Errorf("--share %q: the role must be read or write", sh)
		}
	}
	return nil
}

// apply creates what the flags name and does not exist yet. It returns a
// line to print for each user and site, when any of these flags was given.
func (sf *sharingFlags) apply(fake *graphtest.Server) ([]string, error) {
	if len(sf.users)+len(sf.userSeeds)+len(sf.sites)+len(sf.shares) == 0 {
		return nil, nil
	}
	var notes []string
	have := map[string]bool{}
	for _, u := range fake.Users() {
		have[strings.ToLower(u.ID)] = true
	}
	for _, spec := range sf.users {
		parts := strings.SplitN(spec, ":", 3)
		o := graphtest.UserOptions{ID: parts[0]}
		if len(parts) > 1 {
			o.Email = parts[1]
		}
		if len(parts) > 2 {
			o.DisplayName = parts[2]
		}
		if have[strings.ToLower(o.ID)] {
			continue
		}
		if _, err := fake.AddUser(o); err != nil {
			return nil, fmt.Errorf("--user %s: %w", spec, err)
		}
	}
	drives := map[string]string{}
	for _, u := range fake.Users() {
		drives[strings.ToLower(u.ID)] = u.DriveID
		notes = append(notes, fmt.Sprintf("User: %s <%s> drive %s", u.ID, u.Email, u.DriveID))
	}
	for _, us := range sf.userSeeds {
		id, dir, _ := strings.Cut(us, "=")
		driveID, ok := drives[strings.ToLower(id)]
		if !ok {
			return nil, fmt.Errorf("--user-seed %s: no user %q", us, id)
		}
		if info, ok := fake.ItemByPathIn(driveID, "/"); ok && info.ChildCount > 0 {
			continue
		}
		if err := fake.SeedFromDirIn(driveID, dir); err != nil {
			return nil, fmt.Errorf("--user-seed %s: %w", us, err)
		}
	}
	sites := map[string]bool{}
	for _, st := range fake.Sites() {
		sites[strings.ToLower(st.Name)] = true
	}
	for _, spec := range sf.sites {
		name, members, _ := strings.Cut(spec, ":")
		if !sites[strings.ToLower(name)] {
			o := graphtest.SiteOptions{Name: name}
			if members != "" {
				o.Members = strings.Split(members, ",")
			}
			if _, err := fake.AddSite(o); err != nil {
				return nil, fmt.Errorf("--site %s: %w", spec, err)
			}
		}
	}
	for _, st := range fake.Sites() {
		notes = append(notes, fmt.Sprintf("Site: %s (%s) library %s", st.Name, st.ID, strings.Join(st.DriveIDs, ", ")))
	}
	var errs []error
	for _, spec := range sf.shares {
		parts := strings.Split(spec, ":")
		o := graphtest.ShareOptions{Owner: parts[0], Path: parts[1], With: parts[2], Role: parts[3]}
		if o.Owner == "me" {
			o.Owner = ""
		}
		if o.With == "me" {
			o.With = fake.DefaultDriveID() // the default user's id is their drive's
		}
		if len(parts) == 5 {
			o.Shortcut = parts[4]
		}
		if _, err := fake.Share(o); err != nil {
			errs = append(errs, fmt.Errorf("--share %s: %w", spec, err))
		}
	}
	return notes, errors.Join(errs...)
}

// businessMonitorForms leaves the monitor's forms to the fake's Business
// defaults (200 on every poll, the SharePoint-shaped body) when the drive
// is a Business one and no --monitor-style, --monitor-running-status or
// --monitor-body flag was given: their defaults are the Personal forms.
func businessMonitorForms(fset *pflag.FlagSet, o *graphtest.Options) {
	if o.DriveType != "business" {
		return
	}
	if !fset.Changed("monitor-style") {
		o.Copy.MonitorStyle = ""
	}
	if !fset.Changed("monitor-running-status") {
		o.Copy.MonitorRunningStatus = 0
	}
	if !fset.Changed("monitor-body") {
		o.Copy.MonitorBody = ""
	}
}
