#include "proxycredentials.h"

#include "secretstore.h"
#include "settingsregistry.h"

#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>
#include <QUrl>

namespace keyrelay {

namespace {
/// A proxy URL in one spelling, for comparisons; "" for what is not a URL with a host.
QString normalised(const QString &proxyUrl)
{
    const QUrl url(proxyUrl.trimmed(), QUrl::StrictMode);
    if (!url.isValid() || url.host().isEmpty())
        return QString();
    return url.adjusted(QUrl::RemovePassword).toString(QUrl::FullyEncoded);
}
} // namespace

ProxyCredentials::ProxyCredentials(SecretStore *store) : m_store(store) { }

QString ProxyCredentials::withoutPassword(const QString &proxyUrl, QString *password)
{
    if (password)
        password->clear();
    const QUrl url(proxyUrl.trimmed(), QUrl::StrictMode);
    if (!url.isValid() || url.password(QUrl::FullyDecoded).isEmpty())
        return proxyUrl;
    if (password)
        *password = url.password(QUrl::FullyDecoded);
    return url.adjusted(QUrl::RemovePassword).toString(QUrl::FullyEncoded);
}

QString ProxyCredentials::withPassword(const QString &proxyUrl, const QString &password)
{
    QUrl url(proxyUrl.trimmed(), QUrl::StrictMode);
    if (password.isEmpty() || !url.isValid() || url.userName().isEmpty())
        return proxyUrl;
    url.setPassword(password, QUrl::DecodedMode);
    return url.toString(QUrl::FullyEncoded);
}

bool ProxyCredentials::load(QString *error)
{
    if (!m_store)
        return true;
    QString stored;
    if (!m_store->read(secretName(), &stored, error))
        return false;
    m_proxy.clear();
    m_password.clear();
    if (stored.isEmpty())
        return true;
    const QJsonObject object = QJsonDocument::fromJson(stored.toUtf8()).object();
    m_proxy = normalised(object.value(QLatin1String("proxy")).toString());
    m_password = object.value(QLatin1String("password")).toString();
    if (m_proxy.isEmpty() || m_password.isEmpty()) {
        m_proxy.clear();
        m_password.clear();
        *error = QStringLiteral("the stored upstream proxy password in %1 is damaged; enter it again")
                     .arg(m_store->location());
        return false;
    }
    return true;
}

QString ProxyCredentials::complete(const QString &settingUrl) const
{
    QString password;
    withoutPassword(settingUrl, &password);
    if (!password.isEmpty() || m_password.isEmpty())
        return settingUrl;
    const QString proxy = normalised(settingUrl);
    if (proxy.isEmpty() || proxy != m_proxy)
        return settingUrl;
    return withPassword(settingUrl, m_password);
}

void ProxyCredentials::complete(ProxyConfig *config) const
{
    config->upstreamProxy = complete(config->upstreamProxy);
}

bool ProxyCredentials::remember(const QString &fullUrl, QString *settingUrl, QString *error)
{
    QString password;
    *settingUrl = withoutPassword(fullUrl, &password);
    const QString proxy = password.isEmpty() ? QString() : normalised(*settingUrl);
    if (proxy == m_proxy && password == m_password)
        return true;
    m_proxy = proxy;
    m_password = password;
    if (!m_store)
        return true;
    QString secret;
    if (!password.isEmpty()) {
        QJsonObject object;
        object.insert(QLatin1String("proxy"), proxy);
        object.insert(QLatin1String("password"), password);
        secret = QString::fromUtf8(QJsonDocument(object).toJson(QJsonDocument::Compact));
    }
    return m_store->write(secretName(), secret, error);
}

bool ProxyCredentials::migrate(SettingsRegistry *settings, bool *moved, QString *error)
{
    *moved = false;
    const QString current = settings->value(Setting::UpstreamProxy).toString();
    QString password;
    withoutPassword(current, &password);
    if (password.isEmpty())
        return true;
    if (!m_store) {
        *error = QStringLiteral("no store for the upstream proxy password");
        return false;
    }
    QString settingUrl;
    if (!remember(current, &settingUrl, error))
        return false;
    // Read it back before the only other copy goes.
    QString readError;
    ProxyCredentials check(m_store);
    if (!check.load(&readError) || check.complete(settingUrl) != complete(settingUrl)) {
        *error
            = readError.isEmpty() ? QStringLiteral("the stored password could not be read back") : readError;
        return false;
    }
    if (!settings->setValue(Setting::UpstreamProxy, settingUrl) || !settings->sync()) {
        *error = QStringLiteral("the settings file %1 could not be rewritten").arg(settings->fileName());
        return false;
    }
    // The copy the registry kept of the old file (when it had problems) would still hold the password.
    const QString backup = settings->damagedCopy();
    QFile backupFile(backup);
    if (!backup.isEmpty() && backupFile.open(QIODevice::ReadOnly)) {
        QByteArray content = backupFile.readAll();
        backupFile.close();
        if (content.contains(current.toUtf8())) {
            content.replace(current.toUtf8(), settingUrl.toUtf8());
            QSaveFile rewritten(backup);
            if (rewritten.open(QIODevice::WriteOnly)) {
                rewritten.write(content);
                rewritten.commit();
            }
        }
    }
    *moved = true;
    return true;
}

} // namespace keyrelay
