#include "userconfig.h"

#include <QCoreApplication>
#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSettings>
#include <QStandardPaths>

#include <unistd.h>

namespace keyrelay::userconfig {

namespace {
/// Runtime folder + "keyrelay-<hash of the settings file>": one name per user and settings file.
QString instanceBase(const QString &settingsFile)
{
    const QString key = QFileInfo(settingsFile).absoluteFilePath();
    const QByteArray hash
        = QCryptographicHash::hash(key.toUtf8(), QCryptographicHash::Sha256).toHex().left(16);
    QString folder;
    if (!qEnvironmentVariableIsEmpty("XDG_RUNTIME_DIR")) {
        folder = QStandardPaths::writableLocation(QStandardPaths::RuntimeLocation);
    }
    if (folder.isEmpty()) {
        // No session runtime folder (ssh without a login session, cron, containers): a private folder in
        // /tmp, without the warning QStandardPaths prints for that case.
        folder = QDir(QDir::tempPath()).filePath(QStringLiteral("keyrelay-%1").arg(::getuid()));
        if (QDir().mkpath(folder))
            QFile::setPermissions(folder, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
    }
    return QDir(folder).filePath(QStringLiteral("keyrelay-") + QString::fromLatin1(hash));
}
} // namespace

std::unique_ptr<QSettings> openUserSettings()
{
    return std::make_unique<QSettings>(QSettings::IniFormat, QSettings::UserScope,
                                       QCoreApplication::organizationName(),
                                       QCoreApplication::applicationName());
}

QString instanceLockPath(const QString &settingsFile)
{
    return instanceBase(settingsFile) + QStringLiteral(".lock");
}

QString instanceServerName(const QString &settingsFile)
{
    return instanceBase(settingsFile) + QStringLiteral(".socket");
}

} // namespace keyrelay::userconfig
