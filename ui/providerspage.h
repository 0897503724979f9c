// The "Providers" page (issue 17): the upstream APIs requests are routed among, in routing order (the first
// is the default), added from presets, edited, tested and applied like the Settings page: edits are pending
// until Apply, which stores [providers] and [provider.<id>] and applies them to the running proxy.
#pragma once

#include "applybar.h"
#include "provider.h"
#include "proxyconfig.h"

#include <QWidget>

#include <functional>

class QCheckBox;
class QComboBox;
class QGroupBox;
class QLabel;
class QLineEdit;
class QListView;
class QMenu;
class QPushButton;

namespace keyrelay {


class ModelListProbe;
class ProviderKeys;
class ProvidersModel;
struct ProviderDraft;
class ProxyCredentials;
class ProxyService;
class SettingsRegistry;

class ProvidersPage : public QWidget
{
    Q_OBJECT
public:
    /// @p keys may be null (providers then have no keys of their own and Test sends none).
    ProvidersPage(SettingsRegistry *settings, ProxyService *service, ProviderKeys *keys,
                  QWidget *parent = nullptr);
    ~ProvidersPage() override;

    /// The providers' own keys (may be null: providers then pass the client's key through).
    void setProviderKeys(ProviderKeys *keys) { m_keys = keys; }
    /// The proxy password for the configuration applied and tested (may be null).
    void setProxyCredentials(ProxyCredentials *credentials) { m_credentials = credentials; }

    /// Fills the page from the settings (drops unapplied edits).
    void revert();
    /// Checks the list, stores it, gives the providers their key pools and applies it to the proxy.
    /// Returns false with the reasons shown (nothing is stored while anything is wrong).
    bool apply();
    bool hasPendingChanges() const { return m_bar->isPending(); }
    /// As SettingsPage::confirmDiscardOrApply.
    bool confirmDiscardOrApply(QWidget *parent);

    /// Adds a copy of @p preset (an id not taken yet). When it is the first provider, first offers to keep
    /// the Settings page's upstream and the keys as provider "default" (see setCarryOverPrompt).
    void addPreset(const ProviderConfig &preset);
    /// Puts the Settings page's upstream first as provider "default", served by the existing keys. False
    /// when the list already has a "default".
    bool carryOverDefault();
    /// What asks whether to carry the single upstream over (for tests; default: a message box).
    void setCarryOverPrompt(std::function<bool()> prompt) { m_carryOverPrompt = std::move(prompt); }
    /// Asks the selected provider for its model list (with one of its keys, if it has any).
    void testSelected();
    /// Selects @p row (the editor shows it).
    void selectRow(int row);
    int selectedRow() const;

    ProvidersModel *model() const { return m_model; }
    QListView *listView() const { return m_list; }
    QMenu *addMenu() const { return m_addMenu; }
    QPushButton *addButton() const { return m_add; }
    QPushButton *removeButton() const { return m_remove; }
    QPushButton *upButton() const { return m_up; }
    QPushButton *downButton() const { return m_down; }
    QPushButton *carryOverButton() const { return m_carryOver; }
    QLabel *emptyHint() const { return m_emptyHint; }
    QLineEdit *idEdit() const { return m_id; }
    QLineEdit *nameEdit() const { return m_name; }
    QComboBox *kindCombo() const { return m_kind; }
    QLineEdit *baseUrlEdit() const { return m_baseUrl; }
    QLineEdit *modelsEdit() const { return m_models; }
    QLineEdit *aliasesEdit() const { return m_aliases; }
    QLineEdit *fallbackEdit() const { return m_fallback; }
    QLineEdit *proxyEdit() const { return m_proxy; }
    QCheckBox *enabledCheck() const { return m_enabled; }
    QPushButton *testButton() const { return m_test; }
    QPushButton *applyButton() const { return m_bar->applyButton(); }
    QPushButton *revertButton() const { return m_bar->revertButton(); }
    /// The selected provider's problems, shown under the editor; empty when none.
    QString problemText() const;
    /// The message beside Apply; the Test's result.
    QString messageText() const;
    QString testText() const;

Q_SIGNALS:
    /// The providers were stored and applied (the Keys page's selector and the tester follow).
    void applied();
    void applyFailed(const QString &error);

private:
    void buildList();
    void buildEditor();
    void buildButtons();
    void showSelected();
    void editorChanged();
    void updateState();
    void setMessage(const QString &text, bool error);
    ProxyConfig runtimeConfig() const;

    SettingsRegistry *m_settings;
    ProxyService *m_service;
    ProviderKeys *m_keys;
    ProxyCredentials *m_credentials = nullptr;
    ProvidersModel *m_model;
    ModelListProbe *m_probe;
    std::function<bool()> m_carryOverPrompt;
    QList<ProviderDraft> m_clean;
    bool m_loading = false;

    QListView *m_list = nullptr;
    QPushButton *m_add = nullptr;
    QMenu *m_addMenu = nullptr;
    QPushButton *m_remove = nullptr;
    QPushButton *m_up = nullptr;
    QPushButton *m_down = nullptr;
    QLabel *m_emptyHint = nullptr;
    QPushButton *m_carryOver = nullptr;
    QGroupBox *m_editor = nullptr;
    QLineEdit *m_id = nullptr;
    QLineEdit *m_name = nullptr;
    QComboBox *m_kind = nullptr;
    QLineEdit *m_baseUrl = nullptr;
    QLineEdit *m_models = nullptr;
    QLineEdit *m_aliases = nullptr;
    QLineEdit *m_fallback = nullptr;
    QLineEdit *m_proxy = nullptr;
    QCheckBox *m_enabled = nullptr;
    QPushButton *m_test = nullptr;
    QLabel *m_testResult = nullptr;
    QLabel *m_problems = nullptr;
    ApplyBar *m_bar = nullptr;
};

} // namespace keyrelay
