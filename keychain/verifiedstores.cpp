#include "verifiedstores.h"

#include "logging.h"

namespace keyrelay {

VerifiedKeyStore::VerifiedKeyStore(std::unique_ptr<KeychainKeyStore> keychain, const QString &file,
                                   std::shared_ptr<StorageEvents> events)
    : m_keychain(std::move(keychain)), m_file(file), m_events(std::move(events))
{
}

QString VerifiedKeyStore::location() const
{
    return inKeychain() ? m_keychain->location() : m_file.location();
}

bool VerifiedKeyStore::load(QList<ApiKey> *keys, QString *error)
{
    return inKeychain() ? m_keychain->load(keys, error) : m_file.load(keys, error);
}

bool VerifiedKeyStore::save(const QList<ApiKey> &keys, QString *error)
{
    const std::optional<bool> saved = m_latestSave.run(
        keys, [this, error](const QList<ApiKey> &toWrite) { return saveOnce(toWrite, error); });
    if (!saved)
        return true; // the running save writes these keys next
    const bool ok = *saved;
    if (m_events) {
        if (ok)
            Q_EMIT m_events->keysSaved(location());
        else
            Q_EMIT m_events->keysNotSaved(*error);
    }
    return ok;
}

bool VerifiedKeyStore::saveOnce(const QList<ApiKey> &keys, QString *error)
{
    if (inKeychain()) {
        QString keychainError;
        if (saveToKeychain(keys, &keychainError))
            return true;
        // Never only in memory: the file takes the list now, and every later one.
        m_fallbackReason = keychainError;
        qCWarning(lcKeys).noquote() << keychainError << "- the keys are stored in" << m_file.location()
                                    << "instead, readable only by you";
    }
    QString fileError;
    if (!saveToFile(keys, &fileError)) {
        *error = fellBack() ? QStringLiteral("%1; nor could they be written to %2: %3")
                                  .arg(m_fallbackReason, m_file.location(), fileError)
                            : fileError;
        return false;
    }
    // Said once, when the keys are really in the file.
    if (fellBack() && !m_fallbackAnnounced) {
        m_fallbackAnnounced = true;
        if (m_events)
            Q_EMIT m_events->fellBack(StorageEvents::What::Keys, m_fallbackReason, m_file.location());
    }
    return true;
}

bool VerifiedKeyStore::saveToKeychain(const QList<ApiKey> &keys, QString *error)
{
    if (!m_keychain->save(keys, error))
        return false;
    QList<ApiKey> readBack;
    QString readError;
    if (!m_keychain->load(&readBack, &readError)) {
        *error = QStringLiteral("the keys written to %1 could not be read back: %2")
                     .arg(m_keychain->location(), readError);
        return false;
    }
    if (!sameKeyLists(keys, readBack)) {
        *error = QStringLiteral("the keys read back from %1 differ from those written")
                     .arg(m_keychain->location());
        return false;
    }
    return true;
}

bool VerifiedKeyStore::saveToFile(const QList<ApiKey> &keys, QString *error)
{
    if (!m_file.save(keys, error))
        return false;
    QList<ApiKey> readBack;
    QString readError;
    if (!m_file.load(&readBack, &readError) || !sameKeyLists(keys, readBack)) {
        *error
            = QStringLiteral("the keys written to %1 could not be read back%2")
                  .arg(m_file.location(), readError.isEmpty() ? QString() : QStringLiteral(": ") + readError);
        return false;
    }
    return true;
}

VerifiedSecretStore::VerifiedSecretStore(std::unique_ptr<KeychainSecretStore> keychain, const QString &file,
                                         std::shared_ptr<StorageEvents> events)
    : m_keychain(std::move(keychain)), m_file(file), m_events(std::move(events))
{
}

QString VerifiedSecretStore::location() const
{
    return m_keychain && !fellBack() ? m_keychain->location() : m_file.location();
}

bool VerifiedSecretStore::read(const QString &name, QString *value, QString *error)
{
    return m_keychain && !fellBack() ? m_keychain->read(name, value, error) : m_file.read(name, value, error);
}

bool VerifiedSecretStore::write(const QString &name, const QString &value, QString *error)
{
    const auto writeFile = [&](QString *fileError) {
        QString readBack;
        if (!m_file.write(name, value, fileError))
            return false;
        if (!m_file.read(name, &readBack, fileError) || readBack != value) {
            if (fileError->isEmpty())
                *fileError = QStringLiteral("the secret written to %1 could not be read back")
                                 .arg(m_file.location());
            return false;
        }
        return true;
    };
    if (!m_keychain || fellBack())
        return writeFile(error);

    QString keychainError;
    QString readBack;
    if (m_keychain->write(name, value, &keychainError)) {
        if (m_keychain->read(name, &readBack, &keychainError) && readBack == value)
            return true;
        if (keychainError.isEmpty())
            keychainError = QStringLiteral("the secret read back from %1 differs from the one written")
                                .arg(m_keychain->location());
    }
    m_fallbackReason = keychainError;
    qCWarning(lcKeys).noquote() << keychainError << "- the upstream proxy password is stored in"
                                << m_file.location() << "instead, readable only by you";
    QString fileError;
    if (!writeFile(&fileError)) {
        *error = QStringLiteral("%1; nor could it be written to %2: %3")
                     .arg(keychainError, m_file.location(), fileError);
        return false;
    }
    if (m_events)
        Q_EMIT m_events->fellBack(StorageEvents::What::Secrets, keychainError, m_file.location());
    return true;
}

} // namespace keyrelay
