package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"

	"golang.org/x/oauth2"
)

// TokenSource is an oauth2.TokenSource that refreshes the access token with
// the refresh_token grant when it has expired (or was invalidated), and
// writes every refreshed token back to its TokenStore, so that a restarted
// mount needs no new sign-in. It is safe for concurrent use; concurrent
// callers wait for a single refresh.
//
// Before refreshing, it reads the store: a token there that differs from the
// one in memory was written by another onedrivefs process (a refresh, or a
// new 'onedrivefs login') and is used instead when still valid. A store
// whose token file has disappeared means 'onedrivefs logout' ran: the source
// then stops with ErrLoginRequired rather than bring the token back.
//
// A refresh the service refuses with invalid_grant (or interaction_required)
// gives an error matching ErrLoginRequired. Other failures (network, 5xx) are
// returned as they are and the next call tries again.
type TokenSource struct {
	// ctx carries the HTTP client for refreshes (oauth2.HTTPClient) and, when
	// cancelled, stops them: oauth2.TokenSource.Token takes no context.
	ctx    context.Context
	client *http.Client
	cfg    *oauth2.Config
	store  *TokenStore // nil: refreshed tokens are kept in memory only
	logger *slog.Logger

	mu sync.Mutex // held across a refresh, so that only one runs at a time
	// tok is the current token; nil until the first Token() loads it from the
	// store when NewTokenSource was given none. GUARDED_BY(mu)
	tok *oauth2.Token
	// invalid is set by Invalidate: the next Token() refreshes even if tok
	// has not expired. GUARDED_BY(mu)
	invalid bool
}

var _ oauth2.TokenSource = (*TokenSource)(nil)

// NewTokenSource returns a token source starting from initial (nil: read the
// store on first use). store may be nil (no persistence); logger may be nil.
// ctx is used for every refresh (see TokenSource). It starts no goroutine.
func NewTokenSource(ctx context.Context, cfg *oauth2.Config, store *TokenStore, initial *oauth2.Token, logger *slog.Logger) *TokenSource {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &TokenSource{
		ctx:    ctx,
		client: authHTTPClient(ctx),
		cfg:    cfg,
		store:  store,
		logger: logger,
		tok:    initial,
	}
}

// Token returns a valid access token, refreshing it if needed.
func (s *TokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.invalid && s.tok.Valid() {
		return s.tok, nil
	}
	tok, err := s.refreshLocked()
	if err != nil {
		return nil, err
	}
	s.tok, s.invalid = tok, false
	return tok, nil
}

// Invalidate makes the next Token() get a new access token even though the
// current one has not expired: the service rejected it (HTTP 401). Callers
// should retry a rejected request once, not loop, since every Invalidate
// costs a refresh.
func (s *TokenSource) Invalidate() {
	s.mu.Lock()
	s.invalid = true
	s.mu.Unlock()
}

// refreshLocked returns a new token: the store's if another process saved a
// valid one, else one from the refresh_token grant, saved to the store.
func (s *TokenSource) refreshLocked() (*oauth2.Token, error) {
	cur := s.tok
	if s.store != nil {
		stored, err := s.store.Load()
		switch {
		case errors.Is(err, ErrNotSignedIn):
			return nil, fmt.Errorf("%w (signed out: %s was removed)", ErrLoginRequired, s.store.Path())
		case err != nil:
			s.logger.Warn("cannot read the saved token; refreshing the one in memory", "err", err)
		case cur == nil || stored.AccessToken != cur.AccessToken:
			if stored.Valid() {
				if cur != nil {
					s.logger.Info("using the token saved by another onedrivefs process", "path", s.store.Path())
				}
				return stored, nil
			}
			if stored.RefreshToken != "" {
				cur = stored
			}
		}
	}
	if cur == nil || cur.RefreshToken == "" {
		return nil, fmt.Errorf("%w (the access token expired and there is no refresh token)", ErrLoginRequired)
	}

	tok, err := requestToken(s.ctx, s.client, s.cfg, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {cur.RefreshToken},
	})
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && (re.ErrorCode == oauthInvalidGrant || re.ErrorCode == oauthInteractionRequired) {
			s.logger.Warn("the service refused the refresh token; sign in again", "err", describeRetrieveError(re))
			return nil, newAuthFailure(ErrLoginRequired, ErrLoginRequired.Error(), re)
		}
		if errors.As(err, &re) {
			return nil, newAuthFailure(nil, "refreshing the access token failed", re)
		}
		return nil, fmt.Errorf("refreshing the access token: %w", err)
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = cur.RefreshToken // the service may keep the old one valid
	}
	if s.store != nil {
		if err := s.store.Save(tok); err != nil {
			s.logger.Warn("cannot save the refreshed token; the next start may need a new sign-in", "err", err)
		}
	}
	s.logger.Debug("access token refreshed", "expiry", tok.Expiry)
	return tok, nil
}

// LoadSignIn reads the profile and the token saved by 'onedrivefs login' in
// config directory dir and returns the profile and a token source for it.
// Errors match ErrNotSignedIn when either file is missing.
func LoadSignIn(ctx context.Context, dir string, logger *slog.Logger) (Profile, *TokenSource, error) {
	p, err := LoadProfile(dir)
	if err != nil {
		return Profile{}, nil, err
	}
	store := NewTokenStore(dir, logger)
	tok, err := store.Load()
	if err != nil {
		return Profile{}, nil, err
	}
	return p, NewTokenSource(ctx, p.OAuthConfig(), store, tok, logger), nil
}
