#include "keystore.h"

#include "keypool.h"
#include "logging.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>

namespace keyrelay {

namespace {
constexpr int FormatVersion = 1;
/// A keysFile larger than this is not a list of keys.
constexpr qint64 MaxKeysFileBytes = 4 * 1024 * 1024;
constexpr qint64 MaxFileBytes = qint64(16) * 1024 * 1024;
const QFileDevice::Permissions OwnerOnly = QFileDevice::ReadOwner | QFileDevice::WriteOwner;

/// A damaged file is kept aside before the next save replaces it. Returns the copy's path or "".
QString keepDamagedCopy(const QString &path)
{
    const QString backup = path + QStringLiteral(".damaged");
    QFile::remove(backup);
    if (!QFile::copy(path, backup))
        return QString();
    QFile::setPermissions(backup, OwnerOnly);
    return backup;
}
} // namespace

QByteArray keysToJson(const QList<ApiKey> &keys)
{
    QJsonArray array;
    for (const ApiKey &key : keys) {
        QJsonObject object;
        object.insert(QLatin1String("secret"), key.secret);
        object.insert(QLatin1String("label"), key.label);
        object.insert(QLatin1String("enabled"), key.enabled);
        array.append(object);
    }
    QJsonObject root;
    root.insert(QLatin1String("version"), FormatVersion);
    root.insert(QLatin1String("keys"), array);
    return QJsonDocument(root).toJson(QJsonDocument::Indented);
}

bool keysFromJson(const QByteArray &json, QList<ApiKey> *keys, int *skipped, QString *problem)
{
    keys->clear();
    *skipped = 0;
    QJsonParseError parseError;
    const QJsonDocument document = QJsonDocument::fromJson(json, &parseError);
    if (parseError.error != QJsonParseError::NoError) {
        *problem = parseError.errorString();
        return false;
    }
    if (!document.isObject()) {
        *problem = QStringLiteral("not a JSON object");
        return false;
    }
    const QJsonValue list = document.object().value(QLatin1String("keys"));
    if (!list.isArray()) {
        *problem = QStringLiteral("no \"keys\" list");
        return false;
    }
    const QJsonArray array = list.toArray();
    for (const QJsonValue &item : array) {
        const QJsonObject object = item.toObject();
        ApiKey key;
        key.secret = object.value(QLatin1String("secret")).toString().trimmed();
        key.label = object.value(QLatin1String("label")).toString();
        key.enabled = object.value(QLatin1String("enabled")).toBool(true);
        if (key.secret.isEmpty() || key.secret.contains(QLatin1Char('\n'))) {
            ++*skipped;
            continue;
        }
        keys->append(key);
    }
    return true;
}

bool sameKeyLists(const QList<ApiKey> &a, const QList<ApiKey> &b)
{
    if (a.size() != b.size())
        return false;
    for (int i = 0; i < a.size(); ++i) {
        if (a.at(i).secret != b.at(i).secret || a.at(i).label != b.at(i).label
            || a.at(i).enabled != b.at(i).enabled)
            return false;
    }
    return true;
}

FileKeyStore::FileKeyStore(const QString &path) : m_path(path) { }

QString FileKeyStore::pathNextTo(const QString &settingsFile)
{
    return QFileInfo(settingsFile).absoluteDir().filePath(QStringLiteral("keys.json"));
}

bool FileKeyStore::load(QList<ApiKey> *keys, QString *error)
{
    keys->clear();
    QFile file(m_path);
    if (!file.exists())
        return true;
    if (!file.open(QIODevice::ReadOnly)) {
        *error = QStringLiteral("cannot read the keys file %1: %2").arg(m_path, file.errorString());
        return false;
    }
    if (file.size() > MaxFileBytes) {
        *error = QStringLiteral("the keys file %1 is too large to be a key list").arg(m_path);
        return false;
    }
    int skipped = 0;
    QString problem;
    if (!keysFromJson(file.readAll(), keys, &skipped, &problem)) {
        const QString backup = keepDamagedCopy(m_path);
        *error
            = QStringLiteral("the keys file %1 is damaged (%2); no keys were loaded%3")
                  .arg(m_path, problem,
                       backup.isEmpty() ? QString() : QStringLiteral(" (a copy was kept as %1)").arg(backup));
        return false;
    }
    if (skipped > 0) {
        *error = QStringLiteral("%1 entr(y/ies) of the keys file %2 were unreadable and skipped")
                     .arg(skipped)
                     .arg(m_path);
        return false;
    }
    // Tighten a file that someone loosened by hand.
    if ((file.permissions() & ~(OwnerOnly | QFileDevice::ReadUser | QFileDevice::WriteUser)) != 0)
        file.setPermissions(OwnerOnly);
    qCInfo(lcKeys) << "loaded" << keys->size() << "key(s) from" << m_path;
    return true;
}

bool FileKeyStore::save(const QList<ApiKey> &keys, QString *error)
{
    const QFileInfo info(m_path);
    if (!QDir().mkpath(info.absolutePath())) {
        *error = QStringLiteral("cannot create the folder %1").arg(info.absolutePath());
        return false;
    }
    QSaveFile file(m_path);
    if (!file.open(QIODevice::WriteOnly)) {
        *error = QStringLiteral("cannot write the keys file %1: %2").arg(m_path, file.errorString());
        return false;
    }
    // The temporary file gets owner-only access before any key is written to it.
    file.setPermissions(OwnerOnly);
    file.write(keysToJson(keys));
    if (!file.commit()) {
        *error = QStringLiteral("cannot write the keys file %1: %2").arg(m_path, file.errorString());
        return false;
    }
    if (!QFile::setPermissions(m_path, OwnerOnly)) {
        *error = QStringLiteral("cannot restrict access to the keys file %1").arg(m_path);
        return false;
    }
    qCInfo(lcKeys) << "saved" << keys.size() << "key(s) to" << m_path;
    return true;
}

bool KeyListFileStore::load(QList<ApiKey> *keys, QString *error)
{
    keys->clear();
    QFile file(m_path);
    if (!file.open(QIODevice::ReadOnly | QIODevice::Text)) {
        *error = QStringLiteral("cannot read keys file %1: %2").arg(m_path, file.errorString());
        return false;
    }
    if (file.size() > MaxKeysFileBytes) {
        *error = QStringLiteral("keys file %1 is larger than %2 MiB").arg(m_path).arg(MaxKeysFileBytes / (1024 * 1024));
        return false;
    }
    const QStringList secrets = KeyPool::parseKeyList(QString::fromUtf8(file.readAll()));
    for (const QString &secret : secrets) {
        ApiKey key;
        key.secret = secret;
        keys->append(key);
    }
    return true;
}

bool KeyListFileStore::save(const QList<ApiKey> &, QString *error)
{
    *error = QStringLiteral("these keys come from %1 (keysFile in the settings); edit that file instead").arg(m_path);
    return false;
}

} // namespace keyrelay
