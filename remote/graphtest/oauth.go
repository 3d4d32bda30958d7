package graphtest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// AuthOptions configure the fake Microsoft identity platform
// (docs/graph-contract.md §10). The zero value: tokens valid for an hour,
// refresh tokens for 90 days, device codes valid for 15 minutes and approved
// on their first poll, any client id accepted. They can be changed at run time
// (SetAuthOptions, `PUT /_fake/auth`).
type AuthOptions struct {
	// TokenLifetime of access tokens; 0 → 1 h (the service says 3599 s).
	TokenLifetime time.Duration
	// RefreshTokenLifetime; 0 → 90 days.
	RefreshTokenLifetime time.Duration
	// ManualApproval makes device codes wait for ApproveDeviceCode or
	// DeclineDeviceCode (or the /_fake/devicecodes control endpoints, or the
	// form at /devicelogin) instead of being approved on their first poll.
	ManualApproval bool
	// DeviceCodeLifetime; 0 → 15 min (expires_in 900).
	DeviceCodeLifetime time.Duration
	// PollInterval is the `interval` a device-code response asks clients to
	// wait between polls, rounded to whole seconds; 0 → 5 s, negative → 0
	// (no interval: never slow_down). x/oauth2 treats 0 as 5 s, so tests that
	// use it want 1 s.
	PollInterval time.Duration
	// ClientIDs that may sign in; empty → any.
	ClientIDs []string
	// SingleUseRefreshTokens makes a refresh token invalid once it has been
	// redeemed. The service does not do this (a used refresh token stays
	// valid until it expires, and each redemption also returns a new one);
	// the knob catches clients that forget to store the new token.
	SingleUseRefreshTokens bool
	// LenientPreAuth accepts an Authorization header on pre-authenticated URLs
	// (download, upload session, monitor). By default such requests get 401
	// unauthenticated, as the service sometimes answers
	// (docs/graph-contract.md §4, §5).
	LenientPreAuth bool
}

func (o *AuthOptions) applyDefaults() {
	if o.TokenLifetime == 0 {
		o.TokenLifetime = time.Hour
	}
	if o.RefreshTokenLifetime == 0 {
		o.RefreshTokenLifetime = 90 * 24 * time.Hour
	}
	if o.DeviceCodeLifetime == 0 {
		o.DeviceCodeLifetime = 15 * time.Minute
	}
	if o.PollInterval == 0 {
		o.PollInterval = 5 * time.Second
	}
}

// authState holds issued tokens and pending grants. All fields are guarded
// by Server.mu. The exported fields are JSON-able so that persist.go can save
// them with the drive: a restarted fake-server keeps its sessions signed in.
type authState struct {
	// Access and Refresh tokens by their value.
	Access  map[string]*accessToken  `json:"access"`
	Refresh map[string]*refreshToken `json:"refresh"`
	// Device codes by device_code; userCodes maps user_code → device_code.
	Devices   map[string]*deviceGrant `json:"devices"`
	userCodes map[string]string
	// Codes are authorization codes handed out by /authorize, by value.
	Codes map[string]*authCode `json:"codes"`
}

type accessToken struct {
	Scope   string    `json:"scope"`
	Expires time.Time `json:"expires"`
	// User the token belongs to (users.go); "" is the default user.
	User string `json:"user,omitempty"`
}

type refreshToken struct {
	ClientID string    `json:"clientId"`
	Scope    string    `json:"scope"`
	Expires  time.Time `json:"expires"`
}

// Device grant states.
const (
	devicePending  = "pending"
	deviceApproved = "approved"
	deviceDeclined = "declined"
	deviceRedeemed = "redeemed"
)

type deviceGrant struct {
	UserCode string    `json:"userCode"`
	ClientID string    `json:"clientId"`
	Scope    string    `json:"scope"`
	Expires  time.Time `json:"expires"`
	State    string    `json:"state"`
	LastPoll time.Time `json:"lastPoll"`
}

type authCode struct {
	ClientID      string    `json:"clientId"`
	RedirectURI   string    `json:"redirectUri"`
	Scope         string    `json:"scope"`
	Challenge     string    `json:"challenge,omitempty"`
	ChallengeMode string    `json:"challengeMode,omitempty"`
	Expires       time.Time `json:"expires"`
}

// init makes the maps; it is also called after persist.go restores the
// state, to rebuild the user-code index.
func (a *authState) init() {
	if a.Access == nil {
		a.Access = map[string]*accessToken{}
	}
	if a.Refresh == nil {
		a.Refresh = map[string]*refreshToken{}
	}
	if a.Devices == nil {
		a.Devices = map[string]*deviceGrant{}
	}
	if a.Codes == nil {
		a.Codes = map[string]*authCode{}
	}
	a.userCodes = make(map[string]string, len(a.Devices))
	for dc, g := range a.Devices {
		a.userCodes[g.UserCode] = dc
	}
}

// prune drops everything that has expired. Called on each issue, so the maps
// stay as small as the set of live grants.
func (a *authState) prune(now time.Time) {
	for k, t := range a.Access {
		if now.After(t.Expires) {
			delete(a.Access, k)
		}
	}
	for k, t := range a.Refresh {
		if now.After(t.Expires) {
			delete(a.Refresh, k)
		}
	}
	for k, g := range a.Devices {
		// Keep expired device codes a while so that polls get expired_token
		// rather than bad_verification_code.
		if now.After(g.Expires.Add(time.Hour)) {
			delete(a.Devices, k)
			delete(a.userCodes, g.UserCode)
		}
	}
	for k, c := range a.Codes {
		if now.After(c.Expires) {
			delete(a.Codes, k)
		}
	}
}

// AuthOptions returns the OAuth knobs in force.
func (s *Server) AuthOptions() AuthOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.opts.Auth
	o.ClientIDs = slices.Clone(o.ClientIDs)
	return o
}

// SetAuthOptions changes the OAuth knobs (zero fields take their defaults).
// Tokens and codes already issued keep their expiry.
func (s *Server) SetAuthOptions(o AuthOptions) {
	o.applyDefaults()
	o.ClientIDs = slices.Clone(o.ClientIDs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Auth = o
}

// IssueToken returns a valid access token with the configured lifetime, as if
// a user had signed in. Tests use it to skip the OAuth dance.
func (s *Server) IssueToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueAccessLocked("Files.ReadWrite.All User.Read")
}

// ExpireTokens makes every access token issued so far expired now (refresh
// tokens stay valid), so that tests can exercise the 401 → refresh path.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, t := range s.auth.Access {
		if t.Expires.After(now) {
			t.Expires = now
		}
	}
}

// ApproveDeviceCode approves a pending device code, as the user would by
// entering it at the verification page. Needed only with ManualApproval.
func (s *Server) ApproveDeviceCode(userCode string) error {
	return s.decideDeviceCode(userCode, deviceApproved)
}

// DeclineDeviceCode declines a pending device code: the next poll gets
// authorization_declined.
func (s *Server) DeclineDeviceCode(userCode string) error {
	return s.decideDeviceCode(userCode, deviceDeclined)
}

var (
	errUnknownUserCode = errors.New("unknown user code")
	errCodeNotPending  = errors.New("device code is not pending")
	errCodeExpired     = errors.New("device code has expired")
)

func (s *Server) decideDeviceCode(userCode, state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.auth.Devices[s.auth.userCodes[normalizeUserCode(userCode)]]
	switch {
	case g == nil:
		return errUnknownUserCode
	case s.now().After(g.Expires):
		return errCodeExpired
	case g.State != devicePending:
		return errCodeNotPending
	}
	g.State = state
	s.dirty = true
	return nil
}

func normalizeUserCode(c string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(c), "-", ""))
}

func (s *Server) issueAccessLocked(scope string) string {
	now := s.now()
	s.auth.prune(now)
	tok := "EwB" + randomToken(32)
	s.auth.Access[tok] = &accessToken{Scope: scope, Expires: now.Add(s.opts.Auth.TokenLifetime)}
	s.dirty = true
	return tok
}

func (s *Server) issueRefreshLocked(clientID, scope string) string {
	tok := "M.R3_" + randomToken(32)
	s.auth.Refresh[tok] = &refreshToken{ClientID: clientID, Scope: scope, Expires: s.now().Add(s.opts.Auth.RefreshTokenLifetime)}
	return tok
}

// bearerToken extracts the token of an "Authorization: Bearer …" header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// checkBearer admits a Graph request carrying a live access token. Otherwise
// it answers 401 InvalidAuthenticationToken with a WWW-Authenticate header;
// for an expired token that header contains "expired_token", which is how
// rclone tells an expired token from a bad one (docs/graph-contract.md §7).
func (s *Server) checkBearer(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := bearerToken(r)
	if !ok {
		s.unauthorized(w, r, "Access token is empty.", `error="invalid_token", error_description="Access token is empty."`)
		return false
	}
	s.mu.Lock()
	t := s.auth.Access[tok]
	expired := t != nil && !s.now().Before(t.Expires)
	s.mu.Unlock()
	switch {
	case t == nil:
		s.unauthorized(w, r, "IDX14100: JWT is not well formed.", `error="invalid_token", error_description="The access token is invalid."`)
		return false
	case expired:
		s.unauthorized(w, r, "Lifetime validation failed, the token is expired.", `error="invalid_token", error_description="expired_token: The access token has expired."`)
		return false
	}
	return true
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, message, challenge string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+base(r)+`/common/oauth2/v2.0/authorize", client_id="00000003-0000-0000-c000-000000000000", `+challenge)
	writeError(w, r, http.StatusUnauthorized, codeInvalidAuthToken, message, "")
}

// rejectAuthorization answers a request for a pre-authenticated URL (download,
// upload session, monitor) that carries an Authorization header with 401
// unauthenticated, as the service may (docs/graph-contract.md §4); it reports
// whether it did. AuthOptions.LenientPreAuth turns the check off.
func (s *Server) rejectAuthorization(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") == "" || s.AuthOptions().LenientPreAuth {
		return false
	}
	// The body of the service's answer has no innerError (#1057).
	writeJSON(w, http.StatusUnauthorized, map[string]any{
		"error": map[string]string{"code": codeUnauthenticated, "message": "Authentication failed"},
	})
	return true
}

// oauthError is the error body of the identity platform's token endpoint.
type oauthError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
}

// AADSTS numbers of the errors the fake returns. They are the service's
// numbers as far as known; clients should key off `error`, not these.
const (
	aadPending       = 70016
	aadDeclined      = 70000
	aadExpired       = 70019
	aadBadCode       = 70000
	aadRedeemed      = 54005
	aadInvalidGrant  = 9002313
	aadUnknownClient = 700016
	aadMissingParam  = 900144
	aadBadGrantType  = 70003
	aadRedirectURI   = 50011
	aadPKCE          = 501481
)

func (s *Server) writeOAuthError(w http.ResponseWriter, status int, code string, aad int, desc string) {
	now := s.now().UTC()
	writeJSON(w, status, oauthError{
		Error:         code,
		Description:   fmt.Sprintf("AADSTS%d: %s Trace ID: fake Timestamp: %s", aad, desc, now.Format("2006-01-02 15:04:05Z")),
		Codes:         []int{aad},
		Timestamp:     now.Format("2006-01-02 15:04:05Z"),
		TraceID:       randomToken(16),
		CorrelationID: randomToken(16),
	})
}

// serveOAuth serves /{tenant}/oauth2/v2.0/{devicecode,token,authorize} and
// the verification page /devicelogin. Any tenant is accepted.
func (s *Server) serveOAuth(w http.ResponseWriter, r *http.Request, rt route) {
	switch rt.endpoint {
	case "devicecode":
		s.handleDeviceCode(w, r)
	case "token":
		s.handleToken(w, r)
	case "authorize":
		s.handleAuthorize(w, r)
	case "devicelogin":
		s.handleDeviceLogin(w, r)
	default:
		s.writeOAuthError(w, http.StatusNotFound, "invalid_request", aadMissingParam, "Unknown endpoint.")
	}
}

// clientAllowed reports whether a client id may sign in.
func (s *Server) clientAllowed(id string) bool {
	if id == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.opts.Auth.ClientIDs) == 0 || slices.Contains(s.opts.Auth.ClientIDs, id)
}

// formClientID is the client_id of a token request, from the form or from
// HTTP basic authentication (x/oauth2 tries both).
func formClientID(r *http.Request) string {
	if id := r.PostForm.Get("client_id"); id != "" {
		return id
	}
	if id, _, ok := r.BasicAuth(); ok {
		return id
	}
	return ""
}

// deviceCodeResponse is the body of a successful devicecode request.
type deviceCodeResponse struct {
	DeviceCode      string `json:"device_code"`
	UserCode        string `json:"user_code"`
	VerificationURI string `json:"verification_uri"`
	ExpiresIn       int64  `json:"expires_in"`
	Interval        int64  `json:"interval"`
	Message         string `json:"message"`
}

func (s *Server) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", aadMissingParam, "The request must be a POST.")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeOAuthError(w, http.StatusBadRequest, "invalid_request", aadMissingParam, "The request body must be form-encoded.")
		return
	}
	clientID := r.PostForm.Get("client_id")
	scope := strings.TrimSpace(r.PostForm.Get("scope"))
	switch {
	case clientID == "":
		s.writeOAuthError(w, http.StatusBadRequest, "invalid_request", aadMissingParam, "The request body must contain the following parameter: 'client_id'.")
		return
	case !s.clientAllowed(clientID):
		s.writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", aadUnknownClient, fmt.Sprintf("Application with identifier '%s' was not found in the directory.", clientID))
		return
	case scope == "":
		s.writeOAuthError(w, http.StatusBadRequest, "invalid_request", aadMissingParam, "The request body must contain the following parameter: 'scope'.")
		return
	}
	verification := base(r) + "/devicelogin"
	s.mu.Lock()
	now := s.now()
	s.auth.prune(now)
	dc := randomToken(32)
	uc := newUserCode()
	for s.auth.userCodes[uc] != "" {
		uc = newUserCode()
	}
	life, interval := s.opts.Auth.DeviceCodeLifetime, s.opts.Auth.PollInterval
	s.auth.Devices[dc] = &deviceGrant{UserCode: uc, ClientID: clientID, Scope: scope, Expires: now.Add(life), State: devicePending}
	s.auth.userCodes[uc] = dc
	s.dirty = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, deviceCodeResponse{
		DeviceCode:      dc,
		UserCode:        uc,
		VerificationURI: verification,
		ExpiresIn:       int64(life / time.Second),
		Interval:        max(int64(interval/time.Second), 0),
		Message:         fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", verification, uc),
	})
}

// newUserCode returns a 9-character code from an alphabet without look-alike
// characters.
func newUserCode() string {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ23456789"
	code := make([]byte, 9)
	_, _ = rand.Read(code) // crypto/rand does not fail on Linux
	for i, b := range code {
		code[i] = alphabet[int(b)%len(alphabet)]
	}
	return string(code)
}

// tokenResponse is the body of a successful token request.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// grantScope is the scope reported for a grant: the requested scopes
// without the OpenID ones, which the service does not echo.
func grantScope(scope string) string {
	var out []string
	for _, sc := range strings.Fields(scope) {
		switch strings.ToLower(sc) {
		case "offline_access", "openid", "profile", "email":
			continue
		}
		out = append(out, sc)
	}
	return strings.Join(out, " ")
}

func wantsRefresh(scope string) bool {
	return slices.ContainsFunc(strings.Fields(scope), func(sc string) bool { return strings.EqualFold(sc, "offline_access") })
}

// issueTokensLocked answers a successful grant: an access token, plus a
// refresh token when the grant includes offline_access.
func (s *Server) issueTokensLocked(clientID, scope string) tokenResponse {
	life := int64(s.opts.Auth.TokenLifetime / time.Second)
	resp := tokenResponse{
		TokenType:    "Bearer",
		Scope:        grantScope(scope),
		ExpiresIn:    life,
		ExtExpiresIn: life,
		AccessToken:  s.issueAccessLocked(grantScope(scope)),
	}
	if wantsRefresh(scope) {
		resp.RefreshToken = s.issueRefreshLocked(clientID, scope)
	}
	return resp
}

const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", aadMissingParam, "The request must be a POST.")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeOAuthError(w, http.StatusBadRequest, "invalid_request", aadMissingParam, "The request body must be form-encoded.")
		return
	}
	clientID := formClientID(r)
	if clientID == "" {
		s.writeOAuthError(w, http.StatusBadRequest, "invalid_request", aadMissingParam, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	if !s.clientAllowed(clientID) {
		s.writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", aadUnknownClient, fmt.Sprintf("Application with identifier '%s' was not found in the directory.", clientID))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		resp tokenResponse
		fail *oauthFailure
	)
	switch gt := r.PostForm.Get("grant_type"); gt {
	case deviceCodeGrant:
		resp, fail = s.redeemDeviceCodeLocked(clientID, r.PostForm.Get("device_code"))
	case "refresh_token":
		resp, fail = s.redeemRefreshLocked(clientID, r.PostForm.Get("refresh_token"))
	case "authorization_code":
		resp, fail = s.redeemAuthCodeLocked(clientID, r.PostForm)
	case "":
		fail = &oauthFailure{"invalid_request", aadMissingParam, "The request body must contain the following parameter: 'grant_type'."}
	default:
		fail = &oauthFailure{"unsupported_grant_type", aadBadGrantType, fmt.Sprintf("The provided value for the input parameter 'grant_type' is not valid: %q.", gt)}
	}
	if fail != nil {
		s.writeOAuthError(w, http.StatusBadRequest, fail.code, fail.aad, fail.desc)
		return
	}
	s.dirty = true
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

type oauthFailure struct {
	code string
	aad  int
	desc string
}

func (s *Server) redeemDeviceCodeLocked(clientID, dc string) (tokenResponse, *oauthFailure) {
	if dc == "" {
		return tokenResponse{}, &oauthFailure{"invalid_request", aadMissingParam, "The request body must contain the following parameter: 'device_code'."}
	}
	g := s.auth.Devices[dc]
	if g == nil || g.ClientID != clientID {
		return tokenResponse{}, &oauthFailure{"bad_verification_code", aadBadCode, "The provided value for the input parameter 'device_code' is not valid."}
	}
	now := s.now()
	if g.State == deviceRedeemed {
		return tokenResponse{}, &oauthFailure{"invalid_grant", aadRedeemed, "The provided device code was already redeemed."}
	}
	if !now.Before(g.Expires) {
		return tokenResponse{}, &oauthFailure{"expired_token", aadExpired, "The code has expired."}
	}
	last := g.LastPoll
	g.LastPoll = now
	// Polling faster than three quarters of the interval is "too fast": the
	// slack absorbs a client's timer jitter, since x/oauth2 adds 5 s to its
	// interval on every slow_down.
	if iv := s.opts.Auth.PollInterval; iv > 0 && !last.IsZero() && now.Sub(last) < iv*3/4 {
		return tokenResponse{}, &oauthFailure{"slow_down", aadPending, "The client is polling too quickly."}
	}
	if g.State == devicePending && !s.opts.Auth.ManualApproval {
		g.State = deviceApproved
	}
	switch g.State {
	case devicePending:
		return tokenResponse{}, &oauthFailure{"authorization_pending", aadPending, "OAuth 2.0 device flow error. Authorization is pending. Continue polling."}
	case deviceDeclined:
		return tokenResponse{}, &oauthFailure{"authorization_declined", aadDeclined, "The user declined the sign-in request."}
	}
	g.State = deviceRedeemed
	return s.issueTokensLocked(clientID, g.Scope), nil
}

func (s *Server) redeemRefreshLocked(clientID, rtok string) (tokenResponse, *oauthFailure) {
	if rtok == "" {
		return tokenResponse{}, &oauthFailure{"invalid_request", aadMissingParam, "The request body must contain the following parameter: 'refresh_token'."}
	}
	t := s.auth.Refresh[rtok]
	if t == nil || t.ClientID != clientID || !s.now().Before(t.Expires) {
		return tokenResponse{}, &oauthFailure{"invalid_grant", aadInvalidGrant, "The provided refresh token is invalid or has expired."}
	}
	if s.opts.Auth.SingleUseRefreshTokens {
		delete(s.auth.Refresh, rtok)
	}
	// The scope of the original grant, whatever the request asks: the
	// service allows narrowing it, which the fake does not model.
	// offline_access is implied by using a refresh token.
	granted := t.Scope
	if !wantsRefresh(granted) {
		granted += " offline_access"
	}
	return s.issueTokensLocked(clientID, granted), nil
}

func (s *Server) redeemAuthCodeLocked(clientID string, form url.Values) (tokenResponse, *oauthFailure) {
	code := form.Get("code")
	if code == "" {
		return tokenResponse{}, &oauthFailure{"invalid_request", aadMissingParam, "The request body must contain the following parameter: 'code'."}
	}
	c := s.auth.Codes[code]
	if c == nil || c.ClientID != clientID || !s.now().Before(c.Expires) {
		return tokenResponse{}, &oauthFailure{"invalid_grant", aadRedeemed, "The provided authorization code is invalid, expired or already redeemed."}
	}
	delete(s.auth.Codes, code) // single use, whatever happens next
	if form.Get("redirect_uri") != c.RedirectURI {
		return tokenResponse{}, &oauthFailure{"invalid_grant", aadRedirectURI, "The reply URL does not match the one the code was issued for."}
	}
	if c.Challenge != "" && !pkceMatches(c.Challenge, c.ChallengeMode, form.Get("code_verifier")) {
		return tokenResponse{}, &oauthFailure{"invalid_grant", aadPKCE, "The code_verifier does not match the code_challenge supplied in the authorization request."}
	}
	return s.issueTokensLocked(clientID, c.Scope), nil
}

// pkceMatches checks a PKCE code_verifier (RFC 7636) against its challenge.
func pkceMatches(challenge, mode, verifier string) bool {
	want := verifier
	if !strings.EqualFold(mode, "plain") {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return verifier != "" && subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// handleAuthorize serves GET /{tenant}/oauth2/v2.0/authorize. The fake has
// no users and no consent page: it approves at once and redirects to
// redirect_uri with ?code=…&state=… (a convenience of the fake; the service
// shows a sign-in page first). Errors that can be redirected are, as the
// service does; a missing redirect_uri or client gets a 400 page.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err == nil {
			q = r.Form
		}
	}
	clientID, redirect := q.Get("client_id"), q.Get("redirect_uri")
	target, err := url.Parse(redirect)
	if redirect == "" || err != nil || !target.IsAbs() {
		http.Error(w, "AADSTS900144: The request must contain a valid absolute 'redirect_uri'.", http.StatusBadRequest)
		return
	}
	if !s.clientAllowed(clientID) {
		http.Error(w, fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory.", clientID), http.StatusBadRequest)
		return
	}
	back := target.Query()
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
		back.Set("error_description", "AADSTS70005: Only response_type=code is supported.")
	case strings.TrimSpace(q.Get("scope")) == "":
		back.Set("error", "invalid_request")
		back.Set("error_description", "AADSTS900144: The request must contain the parameter 'scope'.")
	default:
		code := "M.C5_" + randomToken(24)
		s.mu.Lock()
		now := s.now()
		s.auth.prune(now)
		s.auth.Codes[code] = &authCode{
			ClientID:      clientID,
			RedirectURI:   redirect,
			Scope:         q.Get("scope"),
			Challenge:     q.Get("code_challenge"),
			ChallengeMode: q.Get("code_challenge_method"),
			Expires:       now.Add(10 * time.Minute),
		}
		s.dirty = true
		s.mu.Unlock()
		back.Set("code", code)
	}
	target.RawQuery = back.Encode()
	http.Redirect(w, r, target.String(), http.StatusFound)
}

// handleDeviceLogin is the verification page of the device flow: a form
// where a person enters the user code and approves or declines it. Useful
// with ManualApproval when a person runs `onedrivefs fake-server`.
func (s *Server) handleDeviceLogin(w http.ResponseWriter, r *http.Request) {
	msg := "Enter the code shown by the application."
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		code := r.PostForm.Get("user_code")
		state := deviceApproved
		if r.PostForm.Get("action") == "decline" {
			state = deviceDeclined
		}
		if err := s.decideDeviceCode(code, state); err != nil {
			msg = "Code " + code + ": " + err.Error() + "."
		} else {
			msg = "Code " + code + " " + state + ". You can close this page."
		}
	} else if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><title>Fake OneDrive sign-in</title>
<h1>Fake OneDrive sign-in</h1><p>%s</p>
<form method="post"><input name="user_code" autofocus>
<button name="action" value="approve">Approve</button>
<button name="action" value="decline">Decline</button></form>
`, html.EscapeString(msg))
}

// authOptionsJSON is the JSON form of AuthOptions (/_fake/auth).
type authOptionsJSON struct {
	TokenLifetime          jsonDuration `json:"tokenLifetime"`
	RefreshTokenLifetime   jsonDuration `json:"refreshTokenLifetime"`
	ManualApproval         bool         `json:"manualApproval"`
	DeviceCodeLifetime     jsonDuration `json:"deviceCodeLifetime"`
	PollInterval           jsonDuration `json:"pollInterval"`
	ClientIDs              []string     `json:"clientIds"`
	SingleUseRefreshTokens bool         `json:"singleUseRefreshTokens"`
	LenientPreAuth         bool         `json:"lenientPreAuth"`
}

func (o AuthOptions) jsonForm() authOptionsJSON {
	return authOptionsJSON{
		TokenLifetime: jsonDuration(o.TokenLifetime), RefreshTokenLifetime: jsonDuration(o.RefreshTokenLifetime),
		ManualApproval: o.ManualApproval, DeviceCodeLifetime: jsonDuration(o.DeviceCodeLifetime),
		PollInterval: jsonDuration(o.PollInterval), ClientIDs: o.ClientIDs,
		SingleUseRefreshTokens: o.SingleUseRefreshTokens, LenientPreAuth: o.LenientPreAuth,
	}
}

// MarshalJSON writes durations as strings.
func (o AuthOptions) MarshalJSON() ([]byte, error) { return json.Marshal(o.jsonForm()) }

// UnmarshalJSON reads the form MarshalJSON writes; absent fields keep their
// value in o (decoding into the current options merges). Unknown fields are
// an error.
func (o *AuthOptions) UnmarshalJSON(b []byte) error {
	j := o.jsonForm()
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	*o = AuthOptions{
		TokenLifetime: time.Duration(j.TokenLifetime), RefreshTokenLifetime: time.Duration(j.RefreshTokenLifetime),
		ManualApproval: j.ManualApproval, DeviceCodeLifetime: time.Duration(j.DeviceCodeLifetime),
		PollInterval: time.Duration(j.PollInterval), ClientIDs: j.ClientIDs,
		SingleUseRefreshTokens: j.SingleUseRefreshTokens, LenientPreAuth: j.LenientPreAuth,
	}
	return nil
}
