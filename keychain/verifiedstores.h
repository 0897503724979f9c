// Stores that never leave the user's keys or the proxy password in memory only: every save is read back,
// and when the system keychain refuses one, the owner-only file next to the settings takes it at once.
#pragma once

#include "keychainstores.h"
#include "keystore.h"
#include "latestsave.h"
#include "secretstore.h"

#include <QObject>

#include <memory>

namespace keyrelay {

/// What happened to the saves of a VerifiedKeyStore / VerifiedSecretStore, for the window and the tray.
class StorageEvents : public QObject
{
    Q_OBJECT
public:
    enum class What { Keys, Secrets };
    Q_ENUM(What)

Q_SIGNALS:
    /// The system keychain refused a save (@p keychainError, never a secret); the data was written to
    /// @p file instead and read back, and every later save goes there too. Emitted once per store.
    void fellBack(keyrelay::StorageEvents::What what, const QString &keychainError, const QString &file);
    /// The key list could not be stored anywhere that survives a restart (@p error): it is in memory only.
    void keysNotSaved(const QString &error);
    /// The key list was saved and read back from @p location (after keysNotSaved, the danger is over).
    void keysSaved(const QString &location);
};

/// The key list in the system keychain (when @p keychain is given) or in @p file. Each save is read back and
/// compared; a keychain that refuses or garbles it makes this store write @p file (0600) at once instead and
/// keep using it. @p events may be null.
class VerifiedKeyStore : public KeyStore
{
public:
    VerifiedKeyStore(std::unique_ptr<KeychainKeyStore> keychain, const QString &file,
                     std::shared_ptr<StorageEvents> events);

    bool load(QList<ApiKey> *keys, QString *error) override;
    /// A save requested while a save waits for the keychain (the wait runs an event loop) is not lost:
    /// the latest list is written right after.
    bool save(const QList<ApiKey> &keys, QString *error) override;
    QString location() const override;

    /// Whether the keys are in the file because the keychain refused a save; why.
    bool fellBack() const { return !m_fallbackReason.isEmpty(); }
    QString fallbackReason() const { return m_fallbackReason; }
    bool inKeychain() const { return m_keychain && !fellBack(); }

private:
    bool saveOnce(const QList<ApiKey> &keys, QString *error);
    bool saveToKeychain(const QList<ApiKey> &keys, QString *error);
    bool saveToFile(const QList<ApiKey> &keys, QString *error);

    std::unique_ptr<KeychainKeyStore> m_keychain;
    FileKeyStore m_file;
    std::shared_ptr<StorageEvents> m_events;
    QString m_fallbackReason;
    bool m_fallbackAnnounced = false;
    LatestSave<QList<ApiKey>> m_latestSave;
};

/// Named secrets in the system keychain (when @p keychain is given) or in @p file, each write read back; a
/// keychain that refuses one makes this store use @p file (0600) from then on. @p events may be null.
class VerifiedSecretStore : public SecretStore
{
public:
    VerifiedSecretStore(std::unique_ptr<KeychainSecretStore> keychain, const QString &file,
                        std::shared_ptr<StorageEvents> events);

    bool read(const QString &name, QString *value, QString *error) override;
    bool write(const QString &name, const QString &value, QString *error) override;
    QString location() const override;

    bool fellBack() const { return !m_fallbackReason.isEmpty(); }
    QString fallbackReason() const { return m_fallbackReason; }

private:
    std::unique_ptr<KeychainSecretStore> m_keychain;
    FileSecretStore m_file;
    std::shared_ptr<StorageEvents> m_events;
    QString m_fallbackReason;
};

} // namespace keyrelay
