// Package auth holds apimeter's API keys: their format, their storage as
// hashes in the api_keys table, a cache in front of it, and the principal
// a key stands for (tenant, user, role).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/apimeter/apimeter/store"
)

// Roles.
const (
	RoleUser  = "user"  // sees its own usage
	RoleAdmin = "admin" // sees every user of its tenant (AllTenants: every tenant)
	// RoleService is a metered service's key: it decides calls of its
	// tenant's users (POST /limits/check) and reports usage (POST
	// /events), and reads no analytics.
	RoleService = "service"
)

// AllTenants is the tenant of a global admin.
const AllTenants = "*"

// Principal is who a request acts as.
type Principal struct {
	KeyID  string
	Tenant string // AllTenants for a global admin
	User   string
	Role   string
}

// Admin reports whether p may see every user of its tenant.
func (p Principal) Admin() bool { return p.Role == RoleAdmin }

// Service reports whether p is a service key.
func (p Principal) Service() bool { return p.Role == RoleService }

// Global reports whether p is an admin of every tenant.
func (p Principal) Global() bool { return p.Admin() && p.Tenant == AllTenants }

// Key is a stored API key, without its secret.
type Key struct {
	ID        string     `json:"keyId"`
	Prefix    string     `json:"prefix"`
	Tenant    string     `json:"tenantId"`
	User      string     `json:"userId"`
	Role      string     `json:"role"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// Errors callers branch on.
var (
	ErrUnknownKey = errors.New("the API key is not valid")
	ErrRevoked    = errors.New("the API key was revoked")
	ErrExpired    = errors.New("the API key has expired")
	ErrNotFound   = errors.New("no such key")
)

// keyPrefix starts every key apimeter issues, so leaked keys are easy to
// recognise (secret scanners) and to tell from other tokens.
const keyPrefix = "am_"

// Hash is what is stored of a key: SHA-256, hex. Keys are 256-bit random
// secrets, so a fast hash is enough (no password stretching needed).
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// NewSecret makes a key: "am_" and 43 characters of base64url randomness.
func NewSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return keyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func newKeyID() string {
	var b [8]byte
	rand.Read(b[:])
	return "key_" + hex.EncodeToString(b[:])
}

// MaxNameBytes is the longest tenant or user id.
const MaxNameBytes = 128

// NameRule says in words what ValidName accepts, for error messages.
const NameRule = "1 to 128 bytes of UTF-8 text without control characters"

// ValidName checks a tenant or user id. It is the one rule for these ids
// everywhere: the ingester refuses records whose ids break it (to the
// dead-letter topic), and the API, keys and accounts accept every id it
// lets through — so any stored usage can be named in a request. Spaces,
// quotes, slashes and any other printable character are fine: ids reach
// SQL only as typed parameters, and paths carry them URL-encoded.
func ValidName(s string) bool { return NameProblem(s) == "" }

// NameProblem says what is wrong with a tenant or user id, "" when
// nothing is.
func NameProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxNameBytes:
		return fmt.Sprintf("%d bytes, the limit is %d", len(s), MaxNameBytes)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Sprintf("control character %U", r)
		}
	}
	return ""
}

// ValidTenant checks a tenant id: a name, and not AllTenants, which in a
// key means every tenant.
func ValidTenant(s string) bool { return s != AllTenants && ValidName(s) }

// DB is what the key store needs of a store.
type DB interface {
	Exec(ctx context.Context, query string, params ...store.Param) error
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// Store keeps keys in api_keys and caches lookups. Revoking through this
// Store takes effect at once in this process; other processes see it
// within CacheTTL.
type Store struct {
	db       DB
	admin    string // the bootstrap admin key (APIMETER_ADMIN_KEY), "" for none
	ttl      time.Duration
	now      func() time.Time
	mu       sync.Mutex
	cache    map[string]cached // by hash
	maxCache int
}

type cached struct {
	p       Principal
	err     error
	expires time.Time
}

// CacheTTL is how long a key lookup is trusted: a key revoked by another
// process stops working within it.
const CacheTTL = 30 * time.Second

// NewStore builds a key store; adminKey is APIMETER_ADMIN_KEY ("" for
// none).
func NewStore(db DB, adminKey string) *Store {
	return &Store{db: db, admin: adminKey, ttl: CacheTTL, now: time.Now, cache: map[string]cached{}, maxCache: 100_000}
}

// Authenticate resolves a key to its principal. A revoked or expired
// key's error comes with a principal holding only its KeyID (for logs).
func (s *Store) Authenticate(ctx context.Context, key string) (Principal, error) {
	if s.admin != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.admin)) == 1 {
		return Principal{KeyID: "bootstrap", Tenant: AllTenants, User: "admin", Role: RoleAdmin}, nil
	}
	if !strings.HasPrefix(key, keyPrefix) || len(key) > 256 {
		return Principal{}, ErrUnknownKey
	}
	h := Hash(key)
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[h]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.p, c.err
	}
	k, err := s.byHash(ctx, h)
	var p Principal
	switch {
	case errors.Is(err, ErrNotFound):
		err = ErrUnknownKey
	case err != nil:
		return Principal{}, err // a store failure is not cached
	case k.RevokedAt != nil:
		p, err = Principal{KeyID: k.ID}, ErrRevoked
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		p, err = Principal{KeyID: k.ID}, ErrExpired
	default:
		p = Principal{KeyID: k.ID, Tenant: k.Tenant, User: k.User, Role: k.Role}
	}
	ttl := s.ttl
	if err != nil {
		ttl = 5 * time.Second // unknown keys: a short negative cache
	}
	if k.ExpiresAt != nil && k.ExpiresAt.Before(now.Add(ttl)) && err == nil {
		ttl = k.ExpiresAt.Sub(now)
	}
	s.mu.Lock()
	if len(s.cache) >= s.maxCache {
		clear(s.cache)
	}
	s.cache[h] = cached{p: p, err: err, expires: now.Add(ttl)}
	s.mu.Unlock()
	return p, err
}

const keyColumns = `key_id, key_prefix, tenant_id, user_id, role, name, created_at, expires_at, revoked_at`

// scanKey reads keyColumns, then extra columns into extra.
func scanKey(r store.Rows, extra ...any) (Key, error) {
	var k Key
	var expires, revoked any
	dest := append([]any{&k.ID, &k.Prefix, &k.Tenant, &k.User, &k.Role, &k.Name, &k.CreatedAt, &expires, &revoked}, extra...)
	if err := r.Scan(dest...); err != nil {
		return k, err
	}
	if t, ok := expires.(time.Time); ok {
		k.ExpiresAt = &t
	}
	if t, ok := revoked.(time.Time); ok {
		k.RevokedAt = &t
	}
	return k, nil
}

func (s *Store) byHash(ctx context.Context, h string) (Key, error) {
	rows, err := s.db.Query(ctx, `SELECT `+keyColumns+` FROM api_keys FINAL WHERE key_hash = {hash:String} LIMIT 1`, store.Named("hash", h))
	if err != nil {
		return Key{}, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Key{}, err
		}
		return Key{}, ErrNotFound
	}
	return scanKey(rows)
}

// NewKey describes a key to create.
type NewKey struct {
	Tenant    string     `json:"tenantId"`
	User      string     `json:"userId"`
	Role      string     `json:"role"`
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// Validate checks a key request.
func (n NewKey) Validate() error {
	var errs []error
	if n.Tenant != AllTenants && !ValidName(n.Tenant) {
		errs = append(errs, fmt.Errorf("tenantId %.140q: want %s (or * for every tenant)", n.Tenant, NameRule))
	}
	if !ValidName(n.User) {
		errs = append(errs, fmt.Errorf("userId %.140q: want %s", n.User, NameRule))
	}
	if n.Role != RoleUser && n.Role != RoleAdmin && n.Role != RoleService {
		errs = append(errs, fmt.Errorf("role %q: want %q, %q or %q", n.Role, RoleUser, RoleAdmin, RoleService))
	}
	if n.Tenant == AllTenants && n.Role != RoleAdmin {
		errs = append(errs, errors.New("a key for every tenant (*) must be an admin key"))
	}
	if len(n.Name) > 200 {
		errs = append(errs, errors.New("name: at most 200 characters"))
	}
	return errors.Join(errs...)
}

// Create stores a new key and returns it with its secret, which is not
// kept and cannot be shown again.
func (s *Store) Create(ctx context.Context, n NewKey) (Key, string, error) {
	if err := n.Validate(); err != nil {
		return Key{}, "", err
	}
	secret := NewSecret()
	now := s.now().UTC().Truncate(time.Millisecond)
	k := Key{ID: newKeyID(), Prefix: secret[:len(keyPrefix)+6], Tenant: n.Tenant, User: n.User, Role: n.Role, Name: n.Name, CreatedAt: now, ExpiresAt: n.ExpiresAt}
	err := s.write(ctx, k, Hash(secret), now)
	return k, secret, err
}

func (s *Store) write(ctx context.Context, k Key, hash string, at time.Time) error {
	expires, revoked := "", ""
	if k.ExpiresAt != nil {
		expires = k.ExpiresAt.UTC().Format(store.TimeLayout)
	}
	if k.RevokedAt != nil {
		revoked = k.RevokedAt.UTC().Format(store.TimeLayout)
	}
	return s.db.Exec(ctx, `INSERT INTO api_keys (key_id, key_hash, key_prefix, tenant_id, user_id, role, name, created_at, expires_at, revoked_at, version)
		SELECT {id:String}, {hash:String}, {prefix:String}, {tenant:String}, {user:String}, {role:String}, {name:String},
		       {created:DateTime64(3, 'UTC')}, {expires:Nullable(DateTime64(3, 'UTC'))}, {revoked:Nullable(DateTime64(3, 'UTC'))},
		       {version:UInt64}`,
		store.Named("id", k.ID), store.Named("hash", hash), store.Named("prefix", k.Prefix), store.Named("tenant", k.Tenant),
		store.Named("user", k.User), store.Named("role", k.Role), store.Named("name", k.Name), store.Named("created", k.CreatedAt),
		nullable("expires", expires), nullable("revoked", revoked), store.Named("version", uint64(at.UnixNano())))
}

// nullable binds a Nullable parameter: empty is NULL (\N in the text form).
func nullable(name, v string) store.Param {
	if v == "" {
		return store.NullParam(name)
	}
	return store.Named(name, v)
}

// List returns the keys of tenant (every tenant for AllTenants), newest
// first.
func (s *Store) List(ctx context.Context, tenant string) ([]Key, error) {
	q := `SELECT ` + keyColumns + ` FROM api_keys FINAL`
	var params []store.Param
	if tenant != AllTenants {
		q += ` WHERE tenant_id = {tenant:String}`
		params = append(params, store.Named("tenant", tenant))
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY created_at DESC, key_id`, params...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Get returns one key.
func (s *Store) Get(ctx context.Context, id string) (Key, string, error) {
	rows, err := s.db.Query(ctx, `SELECT `+keyColumns+`, key_hash FROM api_keys FINAL WHERE key_id = {id:String}`, store.Named("id", id))
	if err != nil {
		return Key{}, "", err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Key{}, "", err
		}
		return Key{}, "", ErrNotFound
	}
	var hash string
	k, err := scanKey(rows, &hash)
	return k, hash, err
}

// Revoke marks a key revoked; it stops working at once in this process.
func (s *Store) Revoke(ctx context.Context, id string) (Key, error) {
	k, hash, err := s.Get(ctx, id)
	if err != nil {
		return Key{}, err
	}
	if k.RevokedAt != nil {
		return k, nil
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	k.RevokedAt = &now
	if err := s.write(ctx, k, hash, now); err != nil {
		return Key{}, err
	}
	s.mu.Lock()
	delete(s.cache, hash)
	s.mu.Unlock()
	return k, nil
}
