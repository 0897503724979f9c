#include "secretstore.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>

namespace keyrelay {

namespace {
constexpr int FormatVersion = 1;
constexpr qint64 MaxFileBytes = qint64(1024) * 1024;
const QFileDevice::Permissions OwnerOnly = QFileDevice::ReadOwner | QFileDevice::WriteOwner;
} // namespace

FileSecretStore::FileSecretStore(const QString &path) : m_path(path) { }

QString FileSecretStore::pathNextTo(const QString &settingsFile)
{
    return QFileInfo(settingsFile).absoluteDir().filePath(QStringLiteral("secrets.json"));
}

bool FileSecretStore::readAll(QMap<QString, QString> *secrets, QString *error) const
{
    secrets->clear();
    QFile file(m_path);
    if (!file.exists())
        return true;
    if (!file.open(QIODevice::ReadOnly)) {
        *error = QStringLiteral("cannot read the secrets file %1: %2").arg(m_path, file.errorString());
        return false;
    }
    if (file.size() > MaxFileBytes) {
        *error = QStringLiteral("the secrets file %1 is too large").arg(m_path);
        return false;
    }
    QJsonParseError parseError;
    const QJsonDocument document = QJsonDocument::fromJson(file.readAll(), &parseError);
    const QJsonValue list = document.object().value(QLatin1String("secrets"));
    if (parseError.error != QJsonParseError::NoError || !list.isObject()) {
        *error = QStringLiteral("the secrets file %1 is damaged").arg(m_path);
        return false;
    }
    const QJsonObject object = list.toObject();
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (it.value().isString() && !it.value().toString().isEmpty())
            secrets->insert(it.key(), it.value().toString());
    }
    return true;
}

bool FileSecretStore::writeAll(const QMap<QString, QString> &secrets, QString *error) const
{
    if (secrets.isEmpty()) {
        if (QFile::exists(m_path) && !QFile::remove(m_path)) {
            *error = QStringLiteral("cannot remove the secrets file %1").arg(m_path);
            return false;
        }
        return true;
    }
    const QFileInfo info(m_path);
    if (!QDir().mkpath(info.absolutePath())) {
        *error = QStringLiteral("cannot create the folder %1").arg(info.absolutePath());
        return false;
    }
    QJsonObject list;
    for (auto it = secrets.begin(); it != secrets.end(); ++it)
        list.insert(it.key(), it.value());
    QJsonObject root;
    root.insert(QLatin1String("version"), FormatVersion);
    root.insert(QLatin1String("secrets"), list);

    QSaveFile file(m_path);
    if (!file.open(QIODevice::WriteOnly)) {
        *error = QStringLiteral("cannot write the secrets file %1: %2").arg(m_path, file.errorString());
        return false;
    }
    // Owner-only before the first secret byte is written.
    file.setPermissions(OwnerOnly);
    file.write(QJsonDocument(root).toJson(QJsonDocument::Indented));
    if (!file.commit() || !QFile::setPermissions(m_path, OwnerOnly)) {
        *error = QStringLiteral("cannot write the secrets file %1: %2").arg(m_path, file.errorString());
        return false;
    }
    return true;
}

bool FileSecretStore::read(const QString &name, QString *value, QString *error)
{
    value->clear();
    QMap<QString, QString> secrets;
    if (!readAll(&secrets, error))
        return false;
    *value = secrets.value(name);
    return true;
}

bool FileSecretStore::write(const QString &name, const QString &value, QString *error)
{
    QMap<QString, QString> secrets;
    QString readError;
    if (!readAll(&secrets, &readError)) {
        // A damaged file is kept aside, as keys.json is, and replaced; an unreadable one is left alone.
        const QString backup = m_path + QStringLiteral(".damaged");
        QFile::remove(backup);
        if (!QFile::copy(m_path, backup)) {
            *error = readError;
            return false;
        }
        QFile::setPermissions(backup, OwnerOnly);
        secrets.clear();
    }
    if (secrets.value(name) == value)
        return true;
    if (value.isEmpty())
        secrets.remove(name);
    else
        secrets.insert(name, value);
    return writeAll(secrets, error);
}

} // namespace keyrelay
