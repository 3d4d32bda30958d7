package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/oauth2"
)

// Defaults for the real Microsoft service.
const (
	DefaultGraphURL = "https://graph.microsoft.com/v1.0"
	DefaultAuthURL  = "https://login.microsoftonline.com"
	// DefaultTenant lets both personal and work/school accounts sign in.
	DefaultTenant = "common"

	// PlaceholderClientID is the all-zero application id. onedrivefs has no
	// application registered with Microsoft, so this id is accepted only by the
	// fake server. To use the real service, register an application in
	// Microsoft Entra (App registrations → New registration; "Accounts in any
	// organizational directory and personal Microsoft accounts"; under
	// Authentication enable "Allow public client flows"; API permissions:
	// Microsoft Graph, delegated, Files.ReadWrite.All and offline_access) and
	// pass its "Application (client) ID" to `onedrivefs login --client-id`.
	PlaceholderClientID = "00000000-0000-0000-0000-000000000000"
	// DefaultClientID is the client id used when none is given.
	DefaultClientID = PlaceholderClientID
)

// DefaultScopes are the delegated permissions onedrivefs asks for:
// read/write access to every file the user can reach, and a refresh token.
func DefaultScopes() []string { return []string{"Files.ReadWrite.All", "offline_access"} }

// File names inside the config directory.
const (
	profileFileName = "profile.json"
	tokenFileName   = "token.json"
)

// Profile is where a signed-in drive lives: the service endpoints, the
// application identity used to sign in and the drive to mount. It is stored as
// profile.json in the config directory by `onedrivefs login`; it holds no
// secret.
type Profile struct {
	GraphURL string   `json:"graphUrl"` // e.g. https://graph.microsoft.com/v1.0
	AuthURL  string   `json:"authUrl"`  // identity platform base, before /{tenant}/oauth2/v2.0
	Tenant   string   `json:"tenant"`   // common | consumers | organizations | tenant id or domain
	ClientID string   `json:"clientId"` // application (client) id of a public client
	DriveID  string   `json:"driveId,omitempty"`
	Scopes   []string `json:"scopes"`
}

// DefaultProfile returns the profile for the real service with the default
// (placeholder) client id.
func DefaultProfile() Profile {
	return Profile{
		GraphURL: DefaultGraphURL,
		AuthURL:  DefaultAuthURL,
		Tenant:   DefaultTenant,
		ClientID: DefaultClientID,
		Scopes:   DefaultScopes(),
	}
}

// WithDefaults returns p with every empty field set to its default and
// trailing slashes removed from the URLs. DriveID stays empty (the user's own
// drive).
func (p Profile) WithDefaults() Profile {
	d := DefaultProfile()
	if p.GraphURL == "" {
		p.GraphURL = d.GraphURL
	}
	if p.AuthURL == "" {
		p.AuthURL = d.AuthURL
	}
	if p.Tenant == "" {
		p.Tenant = d.Tenant
	}
	if p.ClientID == "" {
		p.ClientID = d.ClientID
	}
	if len(p.Scopes) == 0 {
		p.Scopes = d.Scopes
	}
	p.GraphURL = strings.TrimRight(p.GraphURL, "/")
	p.AuthURL = strings.TrimRight(p.AuthURL, "/")
	return p
}

// Validate reports the first field of p that cannot work.
func (p Profile) Validate() error {
	for _, u := range []struct{ name, value string }{{"graph URL", p.GraphURL}, {"auth URL", p.AuthURL}} {
		parsed, err := url.Parse(u.value)
		if err != nil || (parsed.Scheme != "https" && parsed.Scheme != "http") || parsed.Host == "" {
			return fmt.Errorf("the %s %q is not an absolute http(s) URL", u.name, u.value)
		}
		if parsed.RawQuery != "" || parsed.Fragment != "" {
			return fmt.Errorf("the %s %q must not have a query or fragment", u.name, u.value)
		}
	}
	if p.Tenant == "" || strings.ContainsAny(p.Tenant, "/?#% ") {
		return fmt.Errorf("the tenant %q is not a tenant name or id", p.Tenant)
	}
	if p.ClientID == "" {
		return errors.New("the client id is empty")
	}
	if len(p.Scopes) == 0 {
		return errors.New("no scopes")
	}
	return nil
}

// UsesPlaceholderClientID reports whether p would sign in to a non-loopback
// identity service with PlaceholderClientID, which the real service rejects.
func (p Profile) UsesPlaceholderClientID() bool {
	if p.ClientID != PlaceholderClientID {
		return false
	}
	u, err := url.Parse(p.AuthURL)
	if err != nil {
		return true
	}
	h := u.Hostname()
	return h != "localhost" && h != "127.0.0.1" && h != "::1"
}

// OAuthConfig returns the OAuth2 configuration of a public client (no secret,
// client id sent in the form) for the Microsoft identity platform v2 endpoints
// {AuthURL}/{Tenant}/oauth2/v2.0/{authorize,token,devicecode}.
func (p Profile) OAuthConfig() *oauth2.Config {
	base := strings.TrimRight(p.AuthURL, "/") + "/" + url.PathEscape(p.Tenant) + "/oauth2/v2.0"
	return &oauth2.Config{
		ClientID: p.ClientID,
		Endpoint: oauth2.Endpoint{
			AuthURL:       base + "/authorize",
			TokenURL:      base + "/token",
			DeviceAuthURL: base + "/devicecode",
			AuthStyle:     oauth2.AuthStyleInParams,
		},
		Scopes: append([]string(nil), p.Scopes...),
	}
}

// ConfigDir returns the default config directory, $XDG_CONFIG_HOME/onedrivefs
// or $HOME/.config/onedrivefs, reading the environment through getenv. A
// relative XDG_CONFIG_HOME is ignored, as the XDG base directory spec says. It
// returns "" when neither variable is usable.
func ConfigDir(getenv func(string) string) string {
	if x := getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "onedrivefs")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "onedrivefs")
	}
	return ""
}

// ProfilePath is the path of the profile file in config directory dir.
func ProfilePath(dir string) string { return filepath.Join(dir, profileFileName) }

// SaveProfile writes p atomically to profile.json in dir, creating dir (mode
// 0700) if needed. logger receives a warning when dir is open to other users.
func SaveProfile(dir string, p Profile, logger *slog.Logger) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("saving the profile: %w", err)
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("saving the profile: %w", err)
	}
	if err := EnsureConfigDir(dir, logger); err != nil {
		return err
	}
	if err := writeFileAtomic(ProfilePath(dir), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the profile: %w", err)
	}
	return nil
}

// LoadProfile reads profile.json from dir and fills missing fields with their
// defaults. A missing file gives an error that matches both ErrNotSignedIn and
// fs.ErrNotExist.
func LoadProfile(dir string) (Profile, error) {
	path := ProfilePath(dir)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Profile{}, fmt.Errorf("%w (no profile at %s): %w", ErrNotSignedIn, path, err)
	}
	if err != nil {
		return Profile{}, fmt.Errorf("reading the profile: %w", err)
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return Profile{}, fmt.Errorf("the profile %s is damaged (%v); run 'onedrivefs login' again", path, err)
	}
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return Profile{}, fmt.Errorf("the profile %s is not usable: %w", path, err)
	}
	return p, nil
}
