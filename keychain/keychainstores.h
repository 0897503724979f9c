// The key list and named secrets kept in the system keychain.
#pragma once

#include "keychain.h"
#include "keystore.h"
#include "latestsave.h"
#include "secretstore.h"

namespace keyrelay {

/// The whole key list as one keychain entry ("keys" under the service name; "keys/<id>" for a provider's
/// own keys), in keysToJson()'s format. Saving and loading take one keychain call each, bounded by the
/// keychain's timeout.
class KeychainKeyStore : public KeyStore
{
public:
    static QString entryName() { return QStringLiteral("keys"); }
    /// The entry of provider @p providerId's own keys (the main list, entryName(), is never one of them).
    static QString providerEntryName(const QString &providerId)
    {
        return entryName() + QLatin1Char('/') + providerId;
    }

    explicit KeychainKeyStore(const Keychain &keychain = Keychain(), const QString &entry = entryName());

    bool load(QList<ApiKey> *keys, QString *error) override;
    /// A save requested while a save waits for the keychain (the wait runs an event loop) is not lost:
    /// the latest list is written right after.
    bool save(const QList<ApiKey> &keys, QString *error) override;
    QString location() const override;

private:
    Keychain m_keychain;
    QString m_entry;
    LatestSave<QList<ApiKey>> m_latestSave;
};

/// Each secret is its own keychain entry ("secret/<name>").
class KeychainSecretStore : public SecretStore
{
public:
    explicit KeychainSecretStore(const Keychain &keychain = Keychain());

    bool read(const QString &name, QString *value, QString *error) override;
    bool write(const QString &name, const QString &value, QString *error) override;
    QString location() const override;

private:
    Keychain m_keychain;
};

} // namespace keyrelay
