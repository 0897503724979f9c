// Where a KeyRelay finds its settings, shared by the tray app and `keyrelay --headless` so that the service
// and the tray app are one KeyRelay (their keys: keychain/userstores.h); and the lock that keeps two of them
// off one settings file.
#pragma once

#include <QString>

#include <memory>

class QSettings;

namespace keyrelay {

namespace userconfig {

/// The user's settings: an INI file in the user scope named after the organisation and application
/// (~/.config/KeyRelay/KeyRelay.ini, below $XDG_CONFIG_HOME when set). Set those names first.
std::unique_ptr<QSettings> openUserSettings();

/// The lock file that marks the KeyRelay running with @p settingsFile, in the user's runtime folder.
QString instanceLockPath(const QString &settingsFile);
/// The local socket on which the tray app running with @p settingsFile listens for later launches.
QString instanceServerName(const QString &settingsFile);

} // namespace userconfig
} // namespace keyrelay
