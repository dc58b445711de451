package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Prefixes of a stored signing secret.
const (
	sealedPrefix = "v1:"
	plainPrefix  = "plain:"
)

// sealAAD binds a sealed value to its purpose, so a ciphertext made with
// the same key for something else does not open as a webhook secret.
var sealAAD = []byte("millrace webhook signing secret")

// Errors returned by SealSecret and OpenSecret.
var (
	ErrSecretKey    = errors.New("secret key must be 32 bytes")
	ErrSealedSecret = errors.New("malformed or undecryptable sealed secret")
	ErrPlainSecret  = errors.New("plain secret refused while a secret key is configured")
)

// SealSecret encrypts a signing secret for storage with AES-256-GCM under a
// 32-byte key, as "v1:<base64(nonce|ciphertext)>".
//
// Warning: with an empty key the secret is stored unencrypted, as
// "plain:<secret>". That is for development only. Once a key is configured
// OpenSecret refuses plain secrets, so a development database cannot leak
// unencrypted secrets into production unnoticed.
func SealSecret(key []byte, secret string) (string, error) {
	if secret == "" {
		return "", errors.New("seal secret: empty secret")
	}
	if len(key) == 0 {
		return plainPrefix + secret, nil
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", fmt.Errorf("seal secret: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal secret: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, []byte(secret), sealAAD)

	return sealedPrefix + base64.StdEncoding.EncodeToString(sealed), nil
}

// OpenSecret reverses SealSecret. With an empty key it accepts only
// "plain:<secret>" (development only); with a key, only "v1:" values.
func OpenSecret(key []byte, sealed string) (string, error) {
	if rest, ok := strings.CutPrefix(sealed, plainPrefix); ok {
		if len(key) != 0 {
			return "", fmt.Errorf("open secret: %w", ErrPlainSecret)
		}
		return rest, nil
	}
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", fmt.Errorf("open secret: %w: unknown format", ErrSealedSecret)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", fmt.Errorf("open secret: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("open secret: %w: bad encoding", ErrSealedSecret)
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, raw[:n], raw[n:], sealAAD)
	if err != nil {
		return "", fmt.Errorf("open secret: %w: wrong key or corrupted", ErrSealedSecret)
	}

	return string(plain), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, ErrSecretKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
