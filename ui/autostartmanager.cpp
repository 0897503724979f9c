#include "autostartmanager.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSaveFile>

namespace keyrelay {

XdgAutostartManager::XdgAutostartManager(const QString &executable)
    : m_executable(executable.isEmpty() ? QCoreApplication::applicationFilePath() : executable)
{
}

QString XdgAutostartManager::entryPath()
{
    QString base = qEnvironmentVariable("XDG_CONFIG_HOME");
    if (base.isEmpty() || !QDir::isAbsolutePath(base))
        base = QDir::homePath() + QStringLiteral("/.config");
    return base + QStringLiteral("/autostart/keyrelay.desktop");
}

bool XdgAutostartManager::isEnabled() const
{
    return QFileInfo::exists(entryPath());
}

bool XdgAutostartManager::setEnabled(bool enabled, QString *error)
{
    const QString path = entryPath();
    if (!enabled) {
        if (QFileInfo::exists(path) && !QFile::remove(path)) {
            *error = QCoreApplication::translate("keyrelay::AutostartManager", "Cannot remove %1").arg(path);
            return false;
        }
        return true;
    }
    if (!QDir().mkpath(QFileInfo(path).absolutePath())) {
        *error = QCoreApplication::translate("keyrelay::AutostartManager", "Cannot create %1")
                     .arg(QFileInfo(path).absolutePath());
        return false;
    }
    QString exec = m_executable;
    if (exec.contains(QLatin1Char(' ')) || exec.contains(QLatin1Char('"')))
        exec = QLatin1Char('"') + exec.replace(QLatin1Char('"'), QStringLiteral("\\\"")) + QLatin1Char('"');
    const QString content
        = QStringLiteral("[Desktop Entry]\n"
                         "Type=Application\n"
                         "Name=KeyRelay\n"
                         "Comment=Local OpenAI-compatible proxy that rotates your API keys\n"
                         "Exec=%1\n"
                         "Icon=keyrelay\n"
                         "Terminal=false\n"
                         "X-GNOME-Autostart-enabled=true\n")
              .arg(exec);
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly) || file.write(content.toUtf8()) < 0 || !file.commit()) {
        *error = QCoreApplication::translate("keyrelay::AutostartManager", "Cannot write %1: %2")
                     .arg(path, file.errorString());
        return false;
    }
    return true;
}

} // namespace keyrelay
