#include "userstores.h"

#include "keychainstores.h"
#include "logging.h"
#include "verifiedstores.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>

#include <algorithm>

namespace keyrelay {

namespace {

/// Moves keys.json into the keychain. @p keychainJson is what the probe read (empty: no list there yet).
/// Returns false with @p error when the file must stay; sets @p moved to the number of keys moved.
bool moveKeyFile(const QString &path, const QByteArray &keychainJson, KeychainKeyStore *target, int *moved,
                 QString *error)
{
    FileKeyStore file(path);
    QList<ApiKey> keys;
    QString fileError;
    if (!file.load(&keys, &fileError)) {
        *error = fileError;
        return false;
    }
    // Keys already in the keychain (from an earlier run) are kept after the file's.
    if (!keychainJson.isEmpty()) {
        QList<ApiKey> existing;
        int skipped = 0;
        QString problem;
        if (!keysFromJson(keychainJson, &existing, &skipped, &problem)) {
            *error = QStringLiteral("the key list already in the keychain is damaged (%1)").arg(problem);
            return false;
        }
        for (const ApiKey &key : std::as_const(existing)) {
            const bool known = std::any_of(keys.cbegin(), keys.cend(), [&key](const ApiKey &other) {
                return other.secret == key.secret;
            });
            if (!known)
                keys.append(key);
        }
    }
    if (!target->save(keys, error))
        return false;
    QList<ApiKey> readBack;
    if (!target->load(&readBack, error))
        return false;
    if (!sameKeyLists(keys, readBack)) {
        *error = QStringLiteral("the keys read back from the keychain differ from those written");
        return false;
    }
    *moved = int(keys.size());
    return true;
}

/// Moves every secret of secrets.json into the keychain, read back and compared.
bool moveSecretFile(FileSecretStore *file, KeychainSecretStore *target, QString *error)
{
    QMap<QString, QString> secrets;
    if (!file->readAll(&secrets, error))
        return false;
    for (auto it = secrets.cbegin(); it != secrets.cend(); ++it) {
        QString readBack;
        if (!target->write(it.key(), it.value(), error) || !target->read(it.key(), &readBack, error))
            return false;
        if (readBack != it.value()) {
            *error = QStringLiteral("a secret read back from the keychain differs from the one written");
            return false;
        }
    }
    return true;
}

} // namespace

QString UserStores::notice() const
{
    switch (reason) {
    case Reason::Keychain:
        return QStringLiteral("Keys are stored in the system keychain.");
    case Reason::ForcedFile:
        return QStringLiteral("Keys are stored in %1, readable only by you (%2=file).")
            .arg(keysFile, QLatin1String(keyStoreEnvironmentVariable()));
    case Reason::NoKeychain:
        return QStringLiteral("No system keychain (Secret Service) is available (%1); keys are stored in %2, "
                              "readable only by you.")
            .arg(detail, keysFile);
    case Reason::MigrationFailed:
        return QStringLiteral("The keys could not be moved into the system keychain (%1); they stay in %2, "
                              "readable only by you.")
            .arg(detail, keysFile);
    }
    return QString();
}

QString UserStores::providerKeysFile(const QString &keysFile, const QString &providerId)
{
    return QFileInfo(keysFile).dir().filePath(QStringLiteral("keys-%1.json").arg(providerId));
}

std::unique_ptr<VerifiedKeyStore> UserStores::providerKeys(const QString &providerId, QString *problem) const
{
    const QString file = providerKeysFile(keysFile, providerId);
    if (!inKeychain())
        return std::make_unique<VerifiedKeyStore>(nullptr, file, events);
    const Keychain keychain(keychainService, keychainTimeoutMs);
    auto keychainKeys
        = std::make_unique<KeychainKeyStore>(keychain, KeychainKeyStore::providerEntryName(providerId));
    if (QFile::exists(file)) {
        // Keys saved to the file in a run without a keychain: into the keychain, as openUserStores() does.
        QByteArray keychainJson;
        QString error;
        const Keychain::Status status
            = keychain.read(KeychainKeyStore::providerEntryName(providerId), &keychainJson, &error);
        int moved = 0;
        if ((status != Keychain::Status::Ok && status != Keychain::Status::NotFound)
            || !moveKeyFile(file, keychainJson, keychainKeys.get(), &moved, &error)) {
            if (problem)
                *problem = QStringLiteral("The keys in %1 could not be moved into the system keychain (%2); "
                                          "they stay in that file.")
                               .arg(file, error);
            return std::make_unique<VerifiedKeyStore>(nullptr, file, events);
        }
        if (!QFile::remove(file) && problem)
            *problem = QStringLiteral("The keys were copied into the system keychain, but %1 could not be "
                                      "removed; remove it by hand.")
                           .arg(file);
        qCInfo(lcKeys).noquote() << "moved" << moved << "key(s) of provider" << providerId
                                 << "into the system keychain";
    }
    return std::make_unique<VerifiedKeyStore>(std::move(keychainKeys), file, events);
}

UserStores openUserStores(const QString &settingsFile, const UserStoreOptions &options)
{
    UserStores stores;
    stores.keychainService = options.service;
    stores.keychainTimeoutMs = options.timeoutMs;
    stores.keysFile = FileKeyStore::pathNextTo(settingsFile);
    const QString secretsFile = FileSecretStore::pathNextTo(settingsFile);
    const auto useFiles = [&](UserStores::Reason reason, const QString &detail) {
        stores.reason = reason;
        stores.detail = detail;
        stores.keys = std::make_unique<VerifiedKeyStore>(nullptr, stores.keysFile, stores.events);
        if (!stores.secrets)
            stores.secrets = std::make_unique<VerifiedSecretStore>(nullptr, secretsFile, stores.events);
    };

    const QString mode = qEnvironmentVariable(keyStoreEnvironmentVariable()).trimmed().toLower();
    if (mode == QLatin1String("file")) {
        useFiles(UserStores::Reason::ForcedFile, QString());
        return stores;
    }
    if (!mode.isEmpty() && mode != QLatin1String("auto") && mode != QLatin1String("keychain")) {
        stores.problems << QStringLiteral("%1=%2 is not known (file or auto); using auto")
                               .arg(QLatin1String(keyStoreEnvironmentVariable()), mode);
    }

    const Keychain keychain(options.service, options.timeoutMs);
    QByteArray keychainJson;
    QString probeError;
    const Keychain::Status probe = keychain.read(KeychainKeyStore::entryName(), &keychainJson, &probeError);
    if (probe != Keychain::Status::Ok && probe != Keychain::Status::NotFound) {
        qCInfo(lcKeys).noquote() << "no system keychain:" << probeError;
        useFiles(UserStores::Reason::NoKeychain, probeError);
        return stores;
    }

    auto keychainKeys = std::make_unique<KeychainKeyStore>(keychain);
    auto keychainSecrets = std::make_unique<KeychainSecretStore>(keychain);

    // Secrets first: a failure there keeps only the secrets file, the keys can still move.
    FileSecretStore fileSecrets(secretsFile);
    if (QFile::exists(secretsFile)) {
        QString error;
        if (!moveSecretFile(&fileSecrets, keychainSecrets.get(), &error)) {
            stores.problems << QStringLiteral("The secrets in %1 could not be moved into the system keychain "
                                              "(%2); they stay in that file.")
                                   .arg(secretsFile, error);
            stores.secrets = std::make_unique<VerifiedSecretStore>(nullptr, secretsFile, stores.events);
        } else if (!QFile::remove(secretsFile)) {
            stores.problems << QStringLiteral(
                                   "The secrets were copied into the system keychain, but %1 could "
                                   "not be removed; remove it by hand.")
                                   .arg(secretsFile);
        } else {
            stores.messages
                << QStringLiteral("Moved the secrets from %1 into the system keychain.").arg(secretsFile);
        }
    }
    // A write the keychain refuses later goes to the files at once (and is read back either way).
    if (!stores.secrets)
        stores.secrets
            = std::make_unique<VerifiedSecretStore>(std::move(keychainSecrets), secretsFile, stores.events);

    if (QFile::exists(stores.keysFile)) {
        int moved = 0;
        QString error;
        if (!moveKeyFile(stores.keysFile, keychainJson, keychainKeys.get(), &moved, &error)) {
            stores.problems << QStringLiteral(
                                   "The keys in %1 could not be moved into the system keychain (%2); "
                                   "they stay in that file.")
                                   .arg(stores.keysFile, error);
            useFiles(UserStores::Reason::MigrationFailed, error);
            return stores;
        }
        if (!QFile::remove(stores.keysFile)) {
            stores.problems << QStringLiteral(
                                   "The keys were copied into the system keychain, but %1 could not "
                                   "be removed; remove it by hand.")
                                   .arg(stores.keysFile);
        } else {
            stores.messages << QStringLiteral(
                                   "Moved %1 key(s) from %2 into the system keychain and removed the "
                                   "file.")
                                   .arg(moved)
                                   .arg(stores.keysFile);
        }
    }
    stores.reason = UserStores::Reason::Keychain;
    stores.keys = std::make_unique<VerifiedKeyStore>(std::move(keychainKeys), stores.keysFile, stores.events);
    return stores;
}

std::unique_ptr<KeyStore> openUserKeyStore(const QString &settingsFile, QString *notice)
{
    UserStores stores = openUserStores(settingsFile);
    if (notice)
        *notice = (QStringList { stores.notice() } + stores.problems).join(QLatin1Char(' '));
    return std::move(stores.keys);
}

} // namespace keyrelay
