#include "keychainstores.h"

#include "logging.h"

namespace keyrelay {

namespace {
QString secretEntry(const QString &name)
{
    return QStringLiteral("secret/") + name;
}
} // namespace

KeychainKeyStore::KeychainKeyStore(const Keychain &keychain, const QString &entry)
    : m_keychain(keychain), m_entry(entry)
{
}

QString KeychainKeyStore::location() const
{
    if (m_entry == entryName())
        return QStringLiteral("the system keychain (service \"%1\")").arg(m_keychain.service());
    return QStringLiteral("the system keychain (service \"%1\", entry \"%2\")")
        .arg(m_keychain.service(), m_entry);
}

bool KeychainKeyStore::load(QList<ApiKey> *keys, QString *error)
{
    keys->clear();
    QByteArray json;
    QString keychainError;
    switch (m_keychain.read(m_entry, &json, &keychainError)) {
    case Keychain::Status::Ok:
        break;
    case Keychain::Status::NotFound:
        return true;
    case Keychain::Status::Unavailable:
    case Keychain::Status::Failed:
        *error = QStringLiteral("cannot read the keys from %1: %2").arg(location(), keychainError);
        return false;
    }
    int skipped = 0;
    QString problem;
    if (!keysFromJson(json, keys, &skipped, &problem)) {
        // Keep the damaged list aside before the next save replaces it.
        QString copyError;
        const bool kept = m_keychain.write(m_entry + QStringLiteral(".damaged"), json, &copyError)
            == Keychain::Status::Ok;
        *error = QStringLiteral("the key list in %1 is damaged (%2); no keys were loaded%3")
                     .arg(location(), problem,
                          kept ? QStringLiteral(" (a copy was kept as entry \"%1.damaged\")").arg(m_entry)
                               : QString());
        return false;
    }
    if (skipped > 0) {
        *error = QStringLiteral("%1 entr(y/ies) of the key list in %2 were unreadable and skipped")
                     .arg(skipped)
                     .arg(location());
        return false;
    }
    qCInfo(lcKeys) << "loaded" << keys->size() << "key(s) from the system keychain";
    return true;
}

bool KeychainKeyStore::save(const QList<ApiKey> &keys, QString *error)
{
    bool anyFailed = false;
    const std::optional<bool> saved = m_latestSave.run(keys, [&](const QList<ApiKey> &toWrite) {
        QString keychainError;
        if (m_keychain.write(m_entry, keysToJson(toWrite), &keychainError) != Keychain::Status::Ok) {
            *error = QStringLiteral("cannot write the keys to %1: %2").arg(location(), keychainError);
            anyFailed = true;
            return false;
        }
        qCInfo(lcKeys) << "saved" << toWrite.size() << "key(s) to the system keychain";
        return true;
    });
    return !saved || !anyFailed; // queued (written by the running save), or every write of this run worked
}

KeychainSecretStore::KeychainSecretStore(const Keychain &keychain) : m_keychain(keychain) { }

QString KeychainSecretStore::location() const
{
    return QStringLiteral("the system keychain (service \"%1\")").arg(m_keychain.service());
}

bool KeychainSecretStore::read(const QString &name, QString *value, QString *error)
{
    value->clear();
    QByteArray data;
    QString keychainError;
    switch (m_keychain.read(secretEntry(name), &data, &keychainError)) {
    case Keychain::Status::Ok:
        *value = QString::fromUtf8(data);
        return true;
    case Keychain::Status::NotFound:
        return true;
    case Keychain::Status::Unavailable:
    case Keychain::Status::Failed:
        break;
    }
    *error = QStringLiteral("cannot read a secret from %1: %2").arg(location(), keychainError);
    return false;
}

bool KeychainSecretStore::write(const QString &name, const QString &value, QString *error)
{
    QString keychainError;
    const Keychain::Status status = value.isEmpty()
        ? m_keychain.remove(secretEntry(name), &keychainError)
        : m_keychain.write(secretEntry(name), value.toUtf8(), &keychainError);
    if (status == Keychain::Status::Ok)
        return true;
    *error = QStringLiteral("cannot store a secret in %1: %2").arg(location(), keychainError);
    return false;
}

} // namespace keyrelay
