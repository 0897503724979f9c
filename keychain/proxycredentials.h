// Keeps the upstream network proxy's password out of the settings file.
#pragma once

#include "proxyconfig.h"

#include <QString>

namespace keyrelay {

class SecretStore;
class SettingsRegistry;

/// The settings file holds the proxy as "http://user@host:port"; the password lives in a SecretStore
/// together with the proxy URL it belongs to, so it is only ever sent to that proxy. The password is read
/// once (load()) and kept in memory: complete() never touches the store.
class ProxyCredentials
{
public:
    /// The secret's name in the store.
    static QString secretName() { return QStringLiteral("upstreamProxy"); }

    /// @p store may be null: passwords are then kept in memory only.
    explicit ProxyCredentials(SecretStore *store);

    /// @p proxyUrl without its password (unchanged when it has none or is not a URL); the password goes to
    /// @p password.
    static QString withoutPassword(const QString &proxyUrl, QString *password = nullptr);
    /// @p proxyUrl (which has a user name) with @p password; unchanged when either is missing.
    static QString withPassword(const QString &proxyUrl, const QString &password);

    /// Reads the stored password. False with an @p error when the store cannot be read.
    bool load(QString *error);
    /// The proxy setting to run with: @p settingUrl plus the stored password, when it was stored for that
    /// very proxy (scheme, user, host and port). A URL that still carries a password is returned as it is.
    QString complete(const QString &settingUrl) const;
    void complete(ProxyConfig *config) const;
    /// Stores the password carried by @p fullUrl (or forgets the stored one when it carries none) and sets
    /// @p settingUrl to what the settings file may hold. Returns false with an @p error when the store could
    /// not be written; @p settingUrl never carries the password, and complete() still knows it for this
    /// session.
    bool remember(const QString &fullUrl, QString *settingUrl, QString *error);
    /// A password still found in the proxy setting is moved into the store and the setting is rewritten
    /// without it (and synced), also in the copy the settings kept of a damaged file
    /// (SettingsRegistry::damagedCopy()). When the store fails, the setting stays as it was. Returns false
    /// with an
    /// @p error then; true when nothing had to move or the move succeeded (@p moved tells which).
    bool migrate(SettingsRegistry *settings, bool *moved, QString *error);

    bool hasPassword() const { return !m_password.isEmpty(); }

private:
    SecretStore *m_store;
    QString m_proxy; ///< the setting URL the password belongs to (normalised)
    QString m_password;
};

} // namespace keyrelay
