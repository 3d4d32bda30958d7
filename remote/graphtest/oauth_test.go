package graphtest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

const (
	testClientID = "11111111-2222-3333-4444-555555555555"
	testScope    = "Files.ReadWrite.All offline_access"
)

type deviceCode struct {
	DeviceCode      string `json:"device_code"`
	UserCode        string `json:"user_code"`
	VerificationURI string `json:"verification_uri"`
	ExpiresIn       int    `json:"expires_in"`
	Interval        int    `json:"interval"`
	Message         string `json:"message"`
}

type tokenReply struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
	Codes        []int  `json:"error_codes"`
}

func (h *fakeHarness) deviceCode(scope string) deviceCode {
	h.t.Helper()
	r := h.plain("POST", "/common/oauth2/v2.0/devicecode", url.Values{"client_id": {testClientID}, "scope": {scope}})
	require.Equal(h.t, http.StatusOK, r.status, "%s", r.body)
	var dc deviceCode
	r.decode(h.t, &dc)
	return dc
}

// tokenRequest posts a token request and decodes the answer (success or
// error).
func (h *fakeHarness) tokenRequest(form url.Values) (int, tokenReply) {
	h.t.Helper()
	if form.Get("client_id") == "" {
		form.Set("client_id", testClientID)
	}
	r := h.plain("POST", "/consumers/oauth2/v2.0/token", form)
	var tr tokenReply
	r.decode(h.t, &tr)
	return r.status, tr
}

func (h *fakeHarness) pollDevice(dc deviceCode) (int, tokenReply) {
	h.t.Helper()
	return h.tokenRequest(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc.DeviceCode}})
}

func TestDeviceFlowAutoApproval(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	dc := h.deviceCode(testScope)
	assert.Equal(t, h.srv.URL+"/devicelogin", dc.VerificationURI)
	assert.Equal(t, 900, dc.ExpiresIn)
	assert.Equal(t, 5, dc.Interval)
	assert.Contains(t, dc.Message, dc.UserCode)
	assert.Len(t, dc.UserCode, 9)

	status, tok := h.pollDevice(dc)
	require.Equal(t, http.StatusOK, status, "%+v", tok)
	assert.Equal(t, "Bearer", tok.TokenType)
	assert.Equal(t, "Files.ReadWrite.All", tok.Scope)
	assert.Equal(t, 3600, tok.ExpiresIn)
	assert.Equal(t, 3600, tok.ExtExpiresIn)
	assert.NotEmpty(t, tok.AccessToken)
	assert.NotEmpty(t, tok.RefreshToken, "offline_access was asked for")

	h.token = tok.AccessToken
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive", nil).status)

	// A device code is redeemed once.
	status, again := h.pollDevice(dc)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", again.Error)

	// Without offline_access there is no refresh token.
	status, tok = h.pollDevice(h.deviceCode("Files.ReadWrite.All"))
	require.Equal(t, http.StatusOK, status)
	assert.Empty(t, tok.RefreshToken)

	// Errors of the devicecode endpoint.
	r := h.plain("POST", "/common/oauth2/v2.0/devicecode", url.Values{"scope": {testScope}})
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "invalid_request", r.object(t)["error"])
	r = h.plain("POST", "/common/oauth2/v2.0/devicecode", url.Values{"client_id": {testClientID}})
	assert.Equal(t, http.StatusBadRequest, r.status)
	status, tok = h.tokenRequest(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"nope"}})
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "bad_verification_code", tok.Error)
	assert.NotEmpty(t, tok.Codes)
	status, tok = h.tokenRequest(url.Values{"grant_type": {"password"}})
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "unsupported_grant_type", tok.Error)
}

func TestDeviceFlowManualApproval(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now, Auth: graphtest.AuthOptions{ManualApproval: true}})

	t.Run("approved", func(t *testing.T) {
		dc := h.deviceCode(testScope)
		status, tok := h.pollDevice(dc)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, "authorization_pending", tok.Error)
		assert.Contains(t, tok.Description, "AADSTS")

		// Polling faster than the interval is told to slow down.
		clock.Advance(time.Second)
		_, tok = h.pollDevice(dc)
		assert.Equal(t, "slow_down", tok.Error)

		clock.Advance(5 * time.Second)
		require.NoError(t, h.srv.ApproveDeviceCode(dc.UserCode))
		assert.Error(t, h.srv.ApproveDeviceCode(dc.UserCode), "no longer pending")
		status, tok = h.pollDevice(dc)
		require.Equal(t, http.StatusOK, status, "%+v", tok)
		assert.NotEmpty(t, tok.AccessToken)
	})
	t.Run("declined", func(t *testing.T) {
		dc := h.deviceCode(testScope)
		require.NoError(t, h.srv.DeclineDeviceCode(strings.ToLower(dc.UserCode)))
		status, tok := h.pollDevice(dc)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, "authorization_declined", tok.Error)
	})
	t.Run("expired", func(t *testing.T) {
		dc := h.deviceCode(testScope)
		clock.Advance(15*time.Minute + time.Second)
		status, tok := h.pollDevice(dc)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, "expired_token", tok.Error)
		assert.Error(t, h.srv.ApproveDeviceCode(dc.UserCode))
	})
	t.Run("control endpoint", func(t *testing.T) {
		dc := h.deviceCode(testScope)
		r := h.plain("POST", "/_fake/devicecodes/"+dc.UserCode+"/approve", nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		clock.Advance(10 * time.Second)
		status, _ := h.pollDevice(dc)
		assert.Equal(t, http.StatusOK, status)
	})
	t.Run("verification page", func(t *testing.T) {
		dc := h.deviceCode(testScope)
		r := h.plain("GET", dc.VerificationURI, nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, string(r.body), "<form")
		r = h.plain("POST", dc.VerificationURI, url.Values{"user_code": {dc.UserCode}, "action": {"decline"}})
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, string(r.body), "declined")
		clock.Advance(10 * time.Second)
		_, tok := h.pollDevice(dc)
		assert.Equal(t, "authorization_declined", tok.Error)
	})
}

func TestRefreshGrant(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	_, first := h.pollDevice(h.deviceCode(testScope))
	require.NotEmpty(t, first.RefreshToken)

	status, second := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}})
	require.Equal(t, http.StatusOK, status, "%+v", second)
	assert.NotEqual(t, first.AccessToken, second.AccessToken)
	assert.NotEmpty(t, second.RefreshToken)
	assert.NotEqual(t, first.RefreshToken, second.RefreshToken, "each redemption returns a new refresh token")
	assert.Equal(t, "Files.ReadWrite.All", second.Scope)
	h.token = second.AccessToken
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive", nil).status)

	// As with the service, a used refresh token stays valid…
	status, _ = h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}})
	assert.Equal(t, http.StatusOK, status)
	// …unless the strict knob says otherwise.
	h.srv.SetAuthOptions(graphtest.AuthOptions{SingleUseRefreshTokens: true})
	status, third := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}})
	require.Equal(t, http.StatusOK, status)
	status, tok := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}})
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", tok.Error)
	status, _ = h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {third.RefreshToken}})
	assert.Equal(t, http.StatusOK, status)

	// Another client cannot use the token; an unknown token is refused.
	status, tok = h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {third.RefreshToken}, "client_id": {"other"}})
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", tok.Error)
	status, _ = h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"bogus"}})
	assert.Equal(t, http.StatusBadRequest, status)
}

func TestAuthorizationCodeGrant(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	verifier := "a-very-long-random-verifier-string-of-43-characters-or-more-123"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	redirect := "http://localhost:53682/"
	q := url.Values{
		"client_id": {testClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {testScope}, "state": {"xyz"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	authorize := func() string {
		r := h.plain("GET", "/common/oauth2/v2.0/authorize?"+q.Encode(), nil)
		require.Equal(t, http.StatusFound, r.status, "%s", r.body)
		loc, err := url.Parse(r.header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "localhost:53682", loc.Host)
		assert.Equal(t, "xyz", loc.Query().Get("state"))
		require.NotEmpty(t, loc.Query().Get("code"))
		return loc.Query().Get("code")
	}
	code := authorize()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
	status, tok := h.tokenRequest(form)
	require.Equal(t, http.StatusOK, status, "%+v", tok)
	assert.NotEmpty(t, tok.AccessToken)
	assert.NotEmpty(t, tok.RefreshToken)

	status, tok = h.tokenRequest(form)
	assert.Equal(t, http.StatusBadRequest, status, "a code is used once")
	assert.Equal(t, "invalid_grant", tok.Error)

	form.Set("code", authorize())
	form.Set("code_verifier", "wrong")
	status, tok = h.tokenRequest(form)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", tok.Error)

	form.Set("code", authorize())
	form.Set("code_verifier", verifier)
	form.Set("redirect_uri", "http://localhost:1/")
	status, _ = h.tokenRequest(form)
	assert.Equal(t, http.StatusBadRequest, status, "redirect_uri must match")

	// Errors are redirected when the redirect URI is known.
	q.Set("response_type", "token")
	r := h.plain("GET", "/common/oauth2/v2.0/authorize?"+q.Encode(), nil)
	require.Equal(t, http.StatusFound, r.status)
	assert.Contains(t, r.header.Get("Location"), "error=unsupported_response_type")
	q.Del("redirect_uri")
	assert.Equal(t, http.StatusBadRequest, h.plain("GET", "/common/oauth2/v2.0/authorize?"+q.Encode(), nil).status)
}

func TestClientIDsRestriction(t *testing.T) {
	h := startFake(t, graphtest.Options{Auth: graphtest.AuthOptions{ClientIDs: []string{testClientID}}})
	h.deviceCode(testScope)
	r := h.plain("POST", "/common/oauth2/v2.0/devicecode", url.Values{"client_id": {"someone-else"}, "scope": {testScope}})
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "unauthorized_client", r.object(t)["error"])
}

func TestBearerRequiredOnGraph(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now, Auth: graphtest.AuthOptions{TokenLifetime: 10 * time.Minute}})
	check := func(r reply, wantExpired bool) {
		t.Helper()
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, "InvalidAuthenticationToken", r.errorCode())
		challenge := r.header.Get("WWW-Authenticate")
		assert.True(t, strings.HasPrefix(challenge, "Bearer "), challenge)
		assert.Contains(t, challenge, `error="invalid_token"`)
		assert.Equal(t, wantExpired, strings.Contains(challenge, "expired_token"), challenge)
	}
	check(h.plain("GET", "/v1.0/me/drive", nil), false)
	check(h.send("GET", "/v1.0/me/drive/root/children", nil, http.Header{"Authorization": {"Bearer not-a-token"}}), false)
	check(h.send("GET", "/v1.0/me/drive", nil, http.Header{"Authorization": {"Basic dXNlcjpwdw=="}}), false)

	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive", nil).status)
	clock.Advance(10 * time.Minute)
	check(h.api("GET", "/me/drive", nil), true)

	h.token = h.srv.IssueToken()
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive", nil).status)
	h.srv.ExpireTokens()
	check(h.api("GET", "/me/drive", nil), true)
	h.token = h.srv.IssueToken()
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive", nil).status, "tokens issued after ExpireTokens are valid")
}

func TestPreAuthenticatedURLsRejectAuthorization(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	bearer := http.Header{"Authorization": {"Bearer " + h.token}}
	checkRejected := func(r reply) {
		t.Helper()
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.JSONEq(t, `{"error":{"code":"unauthenticated","message":"Authentication failed"}}`, string(r.body))
	}

	// Download URL.
	id := h.put("/a.txt", "hello", time.Time{})
	r := h.api("GET", "/me/drive/items/"+id+"/content", nil)
	require.Equal(t, http.StatusFound, r.status)
	dl := r.header.Get("Location")
	checkRejected(h.send("GET", dl, nil, bearer))
	r = h.plain("GET", dl, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "hello", string(r.body))

	// Upload-session URL.
	r = h.api("POST", "/me/drive/root:/big.bin:/createUploadSession", map[string]any{})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	up := r.object(t)["uploadUrl"].(string)
	frag := http.Header{"Content-Range": {"bytes 0-2/3"}}
	withAuth := http.Header{"Content-Range": frag["Content-Range"], "Authorization": bearer["Authorization"]}
	checkRejected(h.send("PUT", up, []byte("abc"), withAuth))
	r = h.send("PUT", up, []byte("abc"), frag)
	assert.Contains(t, []int{http.StatusOK, http.StatusCreated}, r.status, "%s", r.body)

	// Monitor URL.
	r = h.api("POST", "/me/drive/items/"+id+"/copy", map[string]any{"name": "b.txt"})
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	mon := r.header.Get("Location")
	checkRejected(h.send("GET", mon, nil, bearer))
	assert.Equal(t, http.StatusSeeOther, h.plain("GET", mon, nil).status)

	// The knob turns the check off.
	h.srv.SetAuthOptions(graphtest.AuthOptions{LenientPreAuth: true})
	assert.Equal(t, http.StatusSeeOther, h.send("GET", mon, nil, bearer).status)
}
