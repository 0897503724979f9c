// "Start at login": one interface, one implementation per desktop family.
#pragma once

#include <QString>

namespace keyrelay {

class AutostartManager
{
public:
    virtual ~AutostartManager() = default;
    virtual bool isEnabled() const = 0;
    /// Returns false with a user-facing @p error when the change could not be made.
    virtual bool setEnabled(bool enabled, QString *error) = 0;
};

/// freedesktop.org autostart: $XDG_CONFIG_HOME/autostart/keyrelay.desktop (default ~/.config).
class XdgAutostartManager : public AutostartManager
{
public:
    /// @p executable is what the entry runs (default: this program).
    explicit XdgAutostartManager(const QString &executable = QString());

    static QString entryPath();
    bool isEnabled() const override;
    bool setEnabled(bool enabled, QString *error) override;

private:
    QString m_executable;
};

} // namespace keyrelay
