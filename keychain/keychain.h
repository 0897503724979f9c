// One synchronous, time-bounded access to the system keychain (QtKeychain: Secret Service or KWallet).
#pragma once

#include <QByteArray>
#include <QString>

namespace keyrelay {

/// The entries of one service name in the system keychain. Each call runs the asynchronous QtKeychain job
/// in a local event loop (user input excluded) and gives up after the timeout, so a keyring that never
/// answers costs at most that long and never hangs the app. Error texts never contain a secret.
class Keychain
{
public:
    static constexpr int DefaultTimeoutMs = 10000;
    static QString defaultService() { return QStringLiteral("KeyRelay"); }

    enum class Status {
        Ok,
        NotFound, ///< the keychain answered: no such entry
        Unavailable, ///< no keychain: no backend, no D-Bus, no answer in time
        Failed, ///< the keychain answered with an error (access denied, ...)
    };

    explicit Keychain(const QString &service = defaultService(), int timeoutMs = DefaultTimeoutMs);

    Status read(const QString &entry, QByteArray *data, QString *error) const;
    Status write(const QString &entry, const QByteArray &data, QString *error) const;
    /// Removing an entry that does not exist succeeds.
    Status remove(const QString &entry, QString *error) const;

    QString service() const { return m_service; }
    int timeoutMs() const { return m_timeoutMs; }

    /// Jobs that did not answer in time and still run; each deletes itself if it ever finishes.
    static int abandonedJobs();

private:
    QString m_service;
    int m_timeoutMs;
};

} // namespace keyrelay
