package registry

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/sas"
)

// Defaults of Options.
const (
	DefaultC2DMaxPending       = 50
	DefaultC2DMaxSize          = 64 * 1024
	DefaultC2DTTL              = time.Hour
	DefaultC2DLockDuration     = time.Minute
	DefaultC2DMaxDeliveryCount = 10
	DefaultFeedbackMax         = 10000
	DefaultFeedbackLock        = time.Minute
	// File notification settings as IoT Hub's defaults
	// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-file-upload,
	// "File upload notifications": TTL 1 hour, lock 60 s, max
	// delivery count 100).
	DefaultFileNotificationTTL           = time.Hour
	DefaultFileNotificationLock          = time.Minute
	DefaultFileNotificationMaxDeliveries = 100
)

// Options configure a Store. A nil *Options means the defaults.
type Options struct {
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives debug and warning messages. Default: discard.
	Logger *slog.Logger
	// C2DMaxPending is the most cloud-to-device messages a device (or
	// module) may have waiting; one more is refused with ErrQueueFull.
	// Default: DefaultC2DMaxPending (50, as IoT Hub).
	C2DMaxPending int
	// C2DMaxSize is the largest cloud-to-device message, body and
	// properties, in bytes; larger ones get ErrMessageTooLarge.
	// Default: DefaultC2DMaxSize (64 KB, as IoT Hub).
	C2DMaxSize int
	// C2DDefaultTTL is the lifetime of a message without an expiry.
	// Default: DefaultC2DTTL (1 hour, as IoT Hub).
	C2DDefaultTTL time.Duration
	// C2DLockDuration is how long a received message stays invisible
	// before it is delivered again. Default: DefaultC2DLockDuration (1 min).
	C2DLockDuration time.Duration
	// C2DMaxDeliveryCount is how many times a message is delivered
	// before it is dead-lettered with DeliveryCountExceeded feedback.
	// Default: DefaultC2DMaxDeliveryCount (10, as IoT Hub).
	C2DMaxDeliveryCount int
	// FeedbackMax bounds the feedback queue; the oldest records are
	// dropped beyond it. Default: DefaultFeedbackMax.
	FeedbackMax int
	// FileNotificationTTL drops a file upload notification not
	// completed within it. Default: DefaultFileNotificationTTL (1 hour).
	FileNotificationTTL time.Duration
	// FileNotificationLock is how long a delivered notification stays
	// invisible before it is delivered again. Default:
	// DefaultFileNotificationLock (1 minute).
	FileNotificationLock time.Duration
	// FileNotificationMaxDeliveries drops a notification delivered
	// that many times without being completed. Default:
	// DefaultFileNotificationMaxDeliveries (100).
	FileNotificationMaxDeliveries int
	// NoSync skips fsync after each write (faster, loses the last
	// writes on a machine crash). Default: false. OpenMemory sets it.
	NoSync bool
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.Now == nil {
		v.Now = time.Now
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.DiscardHandler)
	}
	if v.C2DMaxPending <= 0 {
		v.C2DMaxPending = DefaultC2DMaxPending
	}
	if v.C2DMaxSize <= 0 {
		v.C2DMaxSize = DefaultC2DMaxSize
	}
	if v.C2DDefaultTTL <= 0 {
		v.C2DDefaultTTL = DefaultC2DTTL
	}
	if v.C2DLockDuration <= 0 {
		v.C2DLockDuration = DefaultC2DLockDuration
	}
	if v.C2DMaxDeliveryCount <= 0 {
		v.C2DMaxDeliveryCount = DefaultC2DMaxDeliveryCount
	}
	if v.FeedbackMax <= 0 {
		v.FeedbackMax = DefaultFeedbackMax
	}
	if v.FileNotificationTTL <= 0 {
		v.FileNotificationTTL = DefaultFileNotificationTTL
	}
	if v.FileNotificationLock <= 0 {
		v.FileNotificationLock = DefaultFileNotificationLock
	}
	if v.FileNotificationMaxDeliveries <= 0 {
		v.FileNotificationMaxDeliveries = DefaultFileNotificationMaxDeliveries
	}
	return v
}

// Bucket names. The layout:
//
//	meta      "schema" → "1"
//	policies  keyName → Policy JSON
//	devices   deviceID → Device JSON (no connection fields)
//	modules   deviceID \x00 moduleID → Module JSON
//	twins     identity key → twinRecord JSON
//	c2d       identity key → bucket of sequence (8 bytes) → C2DMessage JSON
//	feedback  sequence (8 bytes) → feedbackRecord JSON
//	presence  identity key → Presence JSON (presence.go)
//	uploads   correlation id → FileUpload JSON (fileupload.go)
//	filenotifications  sequence (8 bytes) → fileNotificationRecord JSON
//
// The identity key is deviceID for a device and deviceID \x00 moduleID
// for a module; \x00 is not allowed in ids.
var (
	bucketMeta     = []byte("meta")
	bucketPolicies = []byte("policies")
	bucketDevices  = []byte("devices")
	bucketModules  = []byte("modules")
	bucketTwins    = []byte("twins")
	bucketC2D      = []byte("c2d")
	bucketFeedback = []byte("feedback")
	allBuckets     = [][]byte{bucketMeta, bucketPolicies, bucketDevices, bucketModules, bucketTwins, bucketC2D, bucketFeedback, bucketPresence,
		bucketUploads, bucketFileNotifications}
)

const schemaVersion = "1"

// Store is the hub's persistent state: identities, twins, shared
// access policies, cloud-to-device queues and feedback, in one bbolt
// file. All methods are safe for concurrent use. Writes go through
// bbolt's Batch, so many concurrent writers share one transaction and
// one fsync.
type Store struct {
	db      *bolt.DB
	opts    Options
	log     *slog.Logger
	tmpDir  string // removed on Close (OpenMemory)
	counter atomic.Uint64
	closed  atomic.Bool
	// feedbackSignal wakes FeedbackAdded waiters (notify.go).
	feedbackSignal signal
	// fileSignal wakes FileNotificationAdded waiters.
	fileSignal signal
}

// Open opens (or creates) the store in the file at path. On first
// start it creates the shared access policies iothubowner, service,
// registryRead, registryReadWrite and device with random keys. The
// file is locked: a second Open of the same path waits up to one
// second and then fails.
func Open(path string, opts *Options) (*Store, error) {
	o := opts.withDefaults()
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: o.NoSync, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", path, err)
	}
	// Writes go through db.Batch, which waits this long to gather
	// concurrent writers into one transaction; bbolt's 10 ms default
	// made a lone writer (one C2D sender, one device create) slow.
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Store{db: db, opts: o, log: o.Logger}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenMemory opens a throw-away store for tests and the demo: a bbolt
// file in a new temporary directory, written without fsync, that
// Close removes. opts.NoSync is forced on.
func OpenMemory(opts *Options) (*Store, error) {
	dir, err := os.MkdirTemp("", "iotctl-hub-")
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	o.NoSync = true
	s, err := Open(filepath.Join(dir, "hub.db"), &o)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.tmpDir = dir
	return s, nil
}

// Close flushes and closes the store; with OpenMemory it also removes
// the file. Close is idempotent.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	var err error
	if s.opts.NoSync && s.tmpDir == "" {
		err = s.db.Sync()
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
	if err != nil {
		return fmt.Errorf("registry: close: %w", err)
	}
	return nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.db.Path() }

func (s *Store) now() time.Time { return s.opts.Now().UTC() }

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("registry: %w", err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("schema")); v != nil {
			if string(v) != schemaVersion {
				return fmt.Errorf("registry: %s has schema %q; this iotctl reads %q", s.db.Path(), v, schemaVersion)
			}
			return nil
		}
		pb := tx.Bucket(bucketPolicies)
		for _, p := range DefaultPolicies {
			pol := Policy{KeyName: p.KeyName, Rights: p.Rights, PrimaryKey: NewKey(), SecondaryKey: NewKey()}
			if err := putJSON(pb, []byte(pol.KeyName), &pol); err != nil {
				return err
			}
		}
		return meta.Put([]byte("schema"), []byte(schemaVersion))
	})
}

// DefaultPolicies are the shared access policies a new store gets,
// as a new IoT Hub has them (keys are generated).
var DefaultPolicies = []Policy{
	{KeyName: "iothubowner", Rights: RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect},
	{KeyName: "service", Rights: ServiceConnect},
	{KeyName: "device", Rights: DeviceConnect},
	{KeyName: "registryRead", Rights: RegistryRead},
	{KeyName: "registryReadWrite", Rights: RegistryRead | RegistryWrite},
}

// Policy returns the shared access policy named name (case-sensitive),
// or an error matching ErrUnauthorized when there is none.
func (s *Store) Policy(name string) (*Policy, error) {
	var p Policy
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPolicies).Get([]byte(name))
		if v == nil {
			return newErr(ErrUnauthorized, "unknown shared access policy %q", name)
		}
		return json.Unmarshal(v, &p)
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// Policies returns every shared access policy, sorted by name.
func (s *Store) Policies() ([]Policy, error) {
	var out []Policy
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPolicies).ForEach(func(k, v []byte) error {
			var p Policy
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// PutPolicy creates or replaces a shared access policy. Empty keys are
// generated; given keys must be base64 of 16 to 64 bytes.
func (s *Store) PutPolicy(p Policy) (*Policy, error) {
	if p.KeyName == "" || len(p.KeyName) > 64 {
		return nil, newErr(ErrArgumentInvalid, "policy name must have 1 to 64 characters")
	}
	if p.PrimaryKey == "" {
		p.PrimaryKey = NewKey()
	}
	if p.SecondaryKey == "" {
		p.SecondaryKey = NewKey()
	}
	if err := checkKey(p.PrimaryKey); err != nil {
		return nil, err
	}
	if err := checkKey(p.SecondaryKey); err != nil {
		return nil, err
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketPolicies), []byte(p.KeyName), &p)
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("registry: encode: %w", err)
	}
	return b.Put(key, data)
}

// NewKey returns a random 32-byte key in standard base64, as IoT Hub
// generates them.
func NewKey() string { return sas.NewKey() }

// checkKey accepts a base64 key of 16 to 64 bytes, as IoT Hub does.
func checkKey(k string) error {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) < 16 || len(b) > 64 {
		return newErr(ErrArgumentInvalid, "a shared access key must be base64 of 16 to 64 bytes")
	}
	return nil
}

func mustRandom(b []byte) {
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic("registry: crypto/rand failed: " + err.Error())
	}
}

// newEtag returns an etag like IoT Hub's device etags: the base64 of
// a decimal number.
func (s *Store) newEtag() string {
	var b [4]byte
	mustRandom(b[:])
	n := uint64(binary.BigEndian.Uint32(b[:]))<<16 | (s.counter.Add(1) & 0xffff)
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatUint(n, 10)))
}

// twinEtag is the twin etag for a twin version: the base64 of the
// version as 8 big-endian bytes, as IoT Hub writes them ("AAAAAAAAAAE=").
func twinEtag(version int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(version))
	return base64.StdEncoding.EncodeToString(b[:])
}

// newGenerationID returns an 18-digit id like IoT Hub's (.NET ticks of
// the creation time), made unique within the process.
func (s *Store) newGenerationID() string {
	ticks := s.now().UnixNano()/100 + 621355968000000000
	return strconv.FormatInt(ticks+int64(s.counter.Add(1)%1000), 10)
}

// NewUUID returns a random RFC 4122 version 4 UUID string.
func NewUUID() string { return uuid.NewString() }

// identityKey is the key of a device (moduleID "") or module.
func identityKey(deviceID, moduleID string) []byte {
	if moduleID == "" {
		return []byte(deviceID)
	}
	return []byte(deviceID + "\x00" + moduleID)
}

// matchEtag implements If-Match: "" and "*" match anything; otherwise
// the (optionally quoted, optionally weak) tag must equal current.
func matchEtag(ifMatch, current string) bool {
	if ifMatch == "" || ifMatch == "*" {
		return true
	}
	return UnquoteEtag(ifMatch) == current
}

// UnquoteEtag strips W/ and the double quotes of an HTTP entity tag.
func UnquoteEtag(s string) string {
	if len(s) >= 2 && (s[0] == 'W' || s[0] == 'w') && s[1] == '/' {
		s = s[2:]
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return s
}

func isRegistryError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
