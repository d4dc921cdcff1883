package dps

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// Extension is the name of the DPS state's bucket in the registry file.
const Extension = "dps"

// OwnerPolicy is the shared access policy a new service gets, with
// every permission, as a new DPS instance has it (Azure docs,
// articles/iot-dps/how-to-control-access.md).
const OwnerPolicy = "provisioningserviceowner"

// DefaultRetryAfter is the retry-after the device API answers with
// while a registration is assigning.
const DefaultRetryAfter = time.Second

// Sub-buckets of the extension bucket. Enrollments, groups and
// registrations are keyed by their id in lower case: DPS ids are
// case-insensitive (Azure docs, articles/iot-dps/iot-dps-https-sym-key-support.md).
var (
	bucketMeta          = []byte("meta")
	bucketPolicies      = []byte("policies")
	bucketEnrollments   = []byte("enrollments")
	bucketGroups        = []byte("groups")
	bucketRegistrations = []byte("registrations")
	allBuckets          = [][]byte{bucketMeta, bucketPolicies, bucketEnrollments, bucketGroups, bucketRegistrations}
	keyIDScope          = []byte("idScope")
)

// Options configure a Service. Registry and HubHostName are required.
type Options struct {
	// Registry is the hub's store: DPS keeps its state in a bucket of
	// the same file, and creates the devices it assigns there. Required.
	Registry *registry.Store
	// HubHostName is the host name of the hub devices are assigned to
	// (registrationState.assignedHub). Required.
	HubHostName string
	// HostNames are the names a service token's scope may name (the
	// DPS service host). Default: nil, any host.
	HostNames []string
	// RetryAfter is what the device API tells a device to wait before
	// polling. Default: DefaultRetryAfter.
	RetryAfter time.Duration
	// DesiredChanged is told when an assignment replaced a device
	// twin's desired properties (patch is the merge patch with
	// "$version"), so that a connected device hears of it. It must not
	// block for long. Default: nil.
	DesiredChanged func(deviceID string, patch json.RawMessage, version int64)
	// Logger receives the service's log. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Service is the local Device Provisioning Service: enrollments,
// enrollment groups and registration states kept in the hub's store,
// device registration with attestation, and assignment to the hub. It
// is transport-neutral: the HTTPS front end (Handler) calls it. It is
// safe for concurrent use.
type Service struct {
	reg        *registry.Store
	hubHost    string
	hosts      []string
	retryAfter time.Duration
	log        *slog.Logger
	now        func() time.Time
	idScope    string
	// desiredChanged is Options.DesiredChanged.
	desiredChanged func(deviceID string, patch json.RawMessage, version int64)
	// locks serialise the registrations of one registration id.
	locks [64]sync.Mutex
}

// New opens the service's state in opts.Registry, making the ID scope
// and the provisioningserviceowner policy on first start (both are
// kept across restarts).
func New(opts *Options) (*Service, error) {
	if opts == nil || opts.Registry == nil || opts.HubHostName == "" {
		return nil, errors.New("dps: Options.Registry and Options.HubHostName are required")
	}
	s := &Service{reg: opts.Registry, hubHost: opts.HubHostName, hosts: opts.HostNames,
		retryAfter: opts.RetryAfter, log: opts.Logger, now: opts.Now, desiredChanged: opts.DesiredChanged}
	if s.retryAfter <= 0 {
		s.retryAfter = DefaultRetryAfter
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	scope := newIDScope()
	owner := Policy{KeyName: OwnerPolicy, PrimaryKey: registry.NewKey(), SecondaryKey: registry.NewKey(), Rights: AllRights}
	err := s.reg.UpdateExtension(Extension, func(b *bolt.Bucket) error {
		for _, n := range allBuckets {
			if _, err := b.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		meta := b.Bucket(bucketMeta)
		if v := meta.Get(keyIDScope); v != nil {
			scope = string(v)
		} else if err := meta.Put(keyIDScope, []byte(scope)); err != nil {
			return err
		}
		pb := b.Bucket(bucketPolicies)
		if pb.Get([]byte(OwnerPolicy)) == nil {
			return putJSON(pb, []byte(OwnerPolicy), &owner)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dps: opening the store: %w", err)
	}
	s.idScope = scope
	return s, nil
}

// newIDScope returns an ID scope in the form of Azure's: "0ne" and 8
// upper-case hex digits (every example in Azure's docs has it, e.g.
// 0ne00111111 in articles/iot-dps/iot-dps-https-sym-key-support.md).
func newIDScope() string {
	var b [4]byte
	mustRandom(b[:])
	return "0ne" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// IDScope is the service's ID scope.
func (s *Service) IDScope() string { return s.idScope }

// HubHostName is the host name devices are assigned to.
func (s *Service) HubHostName() string { return s.hubHost }

// Policy returns the shared access policy named name, or an error
// matching ErrUnauthorized.
func (s *Service) Policy(name string) (*Policy, error) {
	var p *Policy
	err := s.view(bucketPolicies, func(b *bolt.Bucket) error {
		v := b.Get([]byte(name))
		if v == nil {
			return errf(ErrUnauthorized, "unknown shared access policy %q", name)
		}
		p = new(Policy)
		return json.Unmarshal(v, p)
	})
	return p, err
}

// view runs fn on one sub-bucket in a read-only transaction.
func (s *Service) view(name []byte, fn func(b *bolt.Bucket) error) error {
	return s.reg.ViewExtension(Extension, func(b *bolt.Bucket) error {
		if b == nil || b.Bucket(name) == nil {
			return errf(ErrInternal, "the DPS store has no %s bucket", name)
		}
		return fn(b.Bucket(name))
	})
}

// update runs fn on the extension bucket in a batched write.
func (s *Service) update(fn func(b *bolt.Bucket) error) error {
	return s.reg.UpdateExtension(Extension, fn)
}

// lock takes the lock of a registration id and returns its unlock.
func (s *Service) lock(regID string) func() {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(regID)))
	m := &s.locks[h.Sum32()%uint32(len(s.locks))]
	m.Lock()
	return m.Unlock
}

func (s *Service) timestamp() string { return s.now().UTC().Format("2006-01-02T15:04:05.0000000Z") }

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("dps: encode: %w", err)
	}
	return b.Put(key, data)
}

func idKey(id string) []byte { return []byte(strings.ToLower(id)) }

func mustRandom(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic("dps: crypto/rand failed: " + err.Error())
	}
}

// newEtag returns an opaque etag (base64 of a quoted random id, the
// shape of DPS's etags).
func newEtag() string {
	var b [12]byte
	mustRandom(b[:])
	return base64.StdEncoding.EncodeToString([]byte(`"` + hex.EncodeToString(b[:]) + `"`))
}

// newOperationID returns an opaque operation id shaped like DPS's
// ("5.316aac5bdc130deb.b1e02da8-...").
func newOperationID() string {
	var b [8]byte
	mustRandom(b[:])
	return "5." + hex.EncodeToString(b[:]) + "." + registry.NewUUID()
}
