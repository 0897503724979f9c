#include "providerspage.h"

#include "keypool.h"
#include "modellistprobe.h"
#include "providerkeys.h"
#include "providersmodel.h"
#include "proxycredentials.h"
#include "proxyservice.h"
#include "settingsregistry.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QVBoxLayout>

#include <algorithm>

namespace keyrelay {

ProvidersPage::ProvidersPage(SettingsRegistry *settings, ProxyService *service, ProviderKeys *keys,
                             QWidget *parent)
    : QWidget(parent), m_settings(settings), m_service(service), m_keys(keys),
      m_model(new ProvidersModel(this)), m_probe(new ModelListProbe(this))
{
    buildList();
    buildEditor();
    buildButtons();

    auto *left = new QVBoxLayout;
    left->addWidget(m_list, 1);
    auto *listButtons = new QHBoxLayout;
    listButtons->addWidget(m_add);
    listButtons->addWidget(m_remove);
    listButtons->addStretch();
    listButtons->addWidget(m_up);
    listButtons->addWidget(m_down);
    left->addLayout(listButtons);

    auto *right = new QVBoxLayout;
    right->addWidget(m_emptyHint);
    right->addWidget(m_carryOver, 0, Qt::AlignLeft);
    right->addWidget(m_editor);
    right->addStretch();

    auto *columns = new QHBoxLayout;
    columns->addLayout(left, 2);
    columns->addLayout(right, 5);


    auto *layout = new QVBoxLayout(this);
    layout->addLayout(columns, 1);
    layout->addWidget(m_bar);

    connect(m_model, &ProvidersModel::changed, this, &ProvidersPage::updateState);
    connect(m_probe, &ModelListProbe::finished, this,
            [this](bool ok, const QStringList &models, const QString &message) {
                m_test->setEnabled(true);
                if (!ok) {
                    m_testResult->setText(tr("Failed: %1").arg(message));
                    m_testResult->setStyleSheet(QStringLiteral("color: #c02020;"));
                    return;
                }
                QStringList shown = models.mid(0, 4);
                if (models.size() > shown.size())
                    shown << QStringLiteral("…");
                m_testResult->setText(models.isEmpty() ? tr("It answers, with no models listed.")
                                                       : tr("%n model(s): %1", nullptr, int(models.size()))
                                                             .arg(shown.join(QStringLiteral(", "))));
                m_testResult->setStyleSheet(QStringLiteral("color: #208030;"));
            });
    revert();
}

ProvidersPage::~ProvidersPage() = default;

void ProvidersPage::buildList()
{
    m_list = new QListView(this);
    m_list->setModel(m_model);
    m_list->setSelectionMode(QAbstractItemView::SingleSelection);
    m_list->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_list->setAccessibleName(tr("Providers in routing order"));
    m_list->setToolTip(tr("Requests go to the first provider whose models, aliases or id match; the first "
                          "one gets everything else."));
    connect(m_list->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
            &ProvidersPage::showSelected);

    m_add = new QPushButton(tr("&Add"), this);
    m_addMenu = new QMenu(m_add);
    for (const ProviderConfig &preset : ProviderConfig::presets()) {
        QAction *action = m_addMenu->addAction(preset.name);
        action->setToolTip(preset.baseUrl.toString());
        connect(action, &QAction::triggered, this, [this, preset] { addPreset(preset); });
    }
    m_addMenu->addSeparator();
    QAction *custom = m_addMenu->addAction(tr("Custom OpenAI-compatible"));
    connect(custom, &QAction::triggered, this, [this] {
        ProviderConfig config;
        config.id = QStringLiteral("custom");
        config.name = tr("Custom");
        addPreset(config);
    });
    m_add->setMenu(m_addMenu);
    m_remove = new QPushButton(tr("&Remove"), this);
    m_up = new QPushButton(tr("Move &up"), this);
    m_down = new QPushButton(tr("Move do&wn"), this);
    m_up->setToolTip(tr("Earlier in the routing order; the first provider is the default"));
    m_down->setToolTip(tr("Later in the routing order"));
    connect(m_remove, &QPushButton::clicked, this, [this] {
        const int row = selectedRow();
        if (row < 0)
            return;
        m_model->removeProvider(row);
        selectRow(qMin(row, m_model->rowCount() - 1));
    });
    const auto move = [this](int delta) {
        const int to = m_model->moveProvider(selectedRow(), delta);
        if (to >= 0)
            selectRow(to);
    };
    connect(m_up, &QPushButton::clicked, this, [move] { move(-1); });
    connect(m_down, &QPushButton::clicked, this, [move] { move(+1); });

    m_emptyHint = new QLabel(this);
    m_emptyHint->setWordWrap(true);
    m_carryOver = new QPushButton(tr("Carry &over the current upstream as provider \"default\""), this);
    m_carryOver->setToolTip(tr("Its keys stay where they are (the Keys page) and serve it"));
    connect(m_carryOver, &QPushButton::clicked, this, [this] {
        if (carryOverDefault())
            selectRow(0);
    });
}

void ProvidersPage::buildEditor()
{
    m_editor = new QGroupBox(tr("Provider"), this);
    m_id = new QLineEdit(m_editor);
    m_id->setToolTip(tr("a-z, 0-9, _ and -; clients can name it as \"<id>/<model>\" or use /p/<id>/"));
    m_name = new QLineEdit(m_editor);
    m_kind = new QComboBox(m_editor);
    m_kind->addItem(tr("OpenAI-compatible"), int(ProviderKind::OpenAi));
    m_kind->addItem(tr("Anthropic"), int(ProviderKind::Anthropic));
    m_baseUrl = new QLineEdit(m_editor);
    m_baseUrl->setPlaceholderText(QStringLiteral("https://api.example.com/v1"));
    m_models = new QLineEdit(m_editor);
    m_models->setPlaceholderText(tr("e.g. gpt-4o*, o3-mini (patterns with *)"));
    m_models->setToolTip(tr("The models this provider serves, separated by commas; * matches anything"));
    m_aliases = new QLineEdit(m_editor);
    m_aliases->setPlaceholderText(QStringLiteral("fast=deepseek-chat, think=deepseek-reasoner"));
    m_aliases->setToolTip(tr("Names clients may use, each NAME=MODEL: the request reaches this provider with "
                             "MODEL"));
    m_fallback = new QLineEdit(m_editor);
    m_fallback->setPlaceholderText(tr("provider ids, e.g. openrouter, groq"));
    m_fallback->setToolTip(tr("Tried in this order when this provider fails before answering"));
    m_proxy = new QLineEdit(m_editor);
    m_proxy->setPlaceholderText(tr("as in Settings (http://host:port, socks5://host:port, system, none)"));
    m_enabled = new QCheckBox(tr("E&nabled"), m_editor);
    m_test = new QPushButton(tr("T&est"), m_editor);
    m_test->setToolTip(tr("Ask the provider for its model list, with one of its keys"));
    m_testResult = new QLabel(m_editor);
    m_testResult->setWordWrap(true);
    m_testResult->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_problems = new QLabel(m_editor);
    m_problems->setWordWrap(true);
    m_problems->setStyleSheet(QStringLiteral("color: #c02020;"));
    m_problems->hide();
    auto *testRow = new QHBoxLayout;
    testRow->addWidget(m_test);
    testRow->addWidget(m_testResult, 1);

    auto *form = new QFormLayout(m_editor);
    form->addRow(tr("Id:"), m_id);
    form->addRow(tr("Name:"), m_name);
    form->addRow(tr("Kind:"), m_kind);
    form->addRow(tr("Base URL:"), m_baseUrl);
    form->addRow(tr("Models:"), m_models);
    form->addRow(tr("Aliases:"), m_aliases);
    form->addRow(tr("Fallback:"), m_fallback);
    form->addRow(tr("Network proxy:"), m_proxy);
    form->addRow(QString(), m_enabled);
    form->addRow(QString(), testRow);
    form->addRow(m_problems);

    for (QLineEdit *edit : { m_id, m_name, m_baseUrl, m_models, m_aliases, m_fallback, m_proxy })
        connect(edit, &QLineEdit::textChanged, this, &ProvidersPage::editorChanged);
    connect(m_kind, &QComboBox::currentIndexChanged, this, &ProvidersPage::editorChanged);
    connect(m_enabled, &QCheckBox::toggled, this, &ProvidersPage::editorChanged);
    connect(m_test, &QPushButton::clicked, this, &ProvidersPage::testSelected);
}

void ProvidersPage::buildButtons()
{
    m_bar = new ApplyBar(tr("Appl&y"), this); // "&Apply" would clash with "&Add"
    connect(m_bar, &ApplyBar::applyRequested, this, &ProvidersPage::apply);
    connect(m_bar, &ApplyBar::revertRequested, this, &ProvidersPage::revert);
}

int ProvidersPage::selectedRow() const
{
    const QModelIndex current = m_list->selectionModel()->currentIndex();
    return current.isValid() ? current.row() : -1;
}

void ProvidersPage::selectRow(int row)
{
    if (row < 0 || row >= m_model->rowCount()) {
        m_list->selectionModel()->clearCurrentIndex();
        m_list->selectionModel()->clearSelection();
        showSelected();
        return;
    }
    m_list->selectionModel()->setCurrentIndex(m_model->index(row), QItemSelectionModel::ClearAndSelect);
    showSelected();
}

void ProvidersPage::showSelected()
{
    const int row = selectedRow();
    m_loading = true;
    const ProviderDraft draft = m_model->draft(row);
    m_id->setText(draft.id);
    m_name->setText(draft.name);
    m_kind->setCurrentIndex(m_kind->findData(int(draft.kind)));
    m_baseUrl->setText(draft.baseUrl);
    m_models->setText(draft.models);
    m_aliases->setText(draft.aliases);
    m_fallback->setText(draft.fallback);
    m_proxy->setText(draft.upstreamProxy);
    m_enabled->setChecked(draft.enabled);
    m_testResult->clear();
    m_loading = false;
    updateState();
}

void ProvidersPage::editorChanged()
{
    const int row = selectedRow();
    if (m_loading || row < 0)
        return;
    ProviderDraft draft = m_model->draft(row);
    draft.id = m_id->text().trimmed();
    draft.name = m_name->text();
    draft.kind = ProviderKind(m_kind->currentData().toInt());
    draft.baseUrl = m_baseUrl->text();
    draft.models = m_models->text();
    draft.aliases = m_aliases->text();
    draft.fallback = m_fallback->text();
    draft.upstreamProxy = m_proxy->text();
    draft.enabled = m_enabled->isChecked();
    m_model->setDraft(row, draft);
}

void ProvidersPage::updateState()
{
    const int row = selectedRow();
    const int count = m_model->rowCount();
    const bool hasDefault
        = std::any_of(m_model->drafts().cbegin(), m_model->drafts().cend(), [](const ProviderDraft &draft) {
              return draft.id == QLatin1String(ProviderConfig::DefaultId);
          });
    const QString upstream = m_settings->proxyConfig().upstream.toString();
    if (count == 0)
        m_emptyHint->setText(
            tr("No providers: KeyRelay forwards every request to the single upstream of the Settings page "
               "(%1), with the keys of the Keys page. Add a provider to route requests among several APIs "
               "by model; the first provider gets every request no other one claims.")
                .arg(upstream));
    else if (!hasDefault)
        m_emptyHint->setText(tr("The keys of the Keys page belong to the provider \"default\". With none in "
                                "the list they are kept, but not used."));
    else
        m_emptyHint->setText(QString());
    m_emptyHint->setVisible(!m_emptyHint->text().isEmpty());
    m_carryOver->setVisible(!hasDefault);
    m_editor->setVisible(row >= 0);
    m_remove->setEnabled(row >= 0);
    m_up->setEnabled(row > 0);
    m_down->setEnabled(row >= 0 && row < count - 1);
    const QStringList problems = m_model->problems(row);
    m_problems->setText(problems.join(QLatin1Char('\n')));
    m_problems->setVisible(!problems.isEmpty());
    m_test->setEnabled(row >= 0 && !m_probe->isRunning());

    m_bar->setPending(m_model->drafts() != m_clean);
}

void ProvidersPage::revert()
{
    m_model->setProviders(m_settings->providers());
    m_clean = m_model->drafts();
    selectRow(m_model->rowCount() > 0 ? 0 : -1);
    updateState();
}

bool ProvidersPage::carryOverDefault()
{
    const QList<ProviderDraft> drafts = m_model->drafts();
    if (std::any_of(drafts.cbegin(), drafts.cend(), [](const ProviderDraft &draft) {
            return draft.id == QLatin1String(ProviderConfig::DefaultId);
        }))
        return false;
    ProviderConfig config;
    config.id = QString::fromLatin1(ProviderConfig::DefaultId);
    config.name = tr("Settings upstream");
    config.baseUrl = m_settings->proxyConfig().upstream;
    // No network proxy of its own: the Settings page's applies, as before.
    m_model->insertProvider(0, config);
    return true;
}

void ProvidersPage::addPreset(const ProviderConfig &preset)
{
    if (m_model->rowCount() == 0) {
        const auto ask = [this] {
            const int keys = m_keys ? m_keys->mainPool()->size() : 0;
            QMessageBox box(QMessageBox::Question, tr("KeyRelay"),
                            tr("Keep the current upstream %1 as provider \"default\"?")
                                .arg(m_settings->proxyConfig().upstream.toString()),
                            QMessageBox::Yes | QMessageBox::No, this);
            box.setInformativeText(
                tr("Its %n key(s) stay where they are and serve it. Without it, those keys are kept but not "
                   "used.",
                   nullptr, keys));
            box.setDefaultButton(QMessageBox::Yes);
            box.setObjectName(QStringLiteral("carryOverPrompt"));
            return box.exec() == QMessageBox::Yes;
        };
        if (m_carryOverPrompt ? m_carryOverPrompt() : ask())
            carryOverDefault();
    }
    selectRow(m_model->addProvider(preset));
    m_id->setFocus();
}

void ProvidersPage::testSelected()
{
    const int row = selectedRow();
    if (row < 0)
        return;
    const ProviderDraft draft = m_model->draft(row);
    ProviderConfig provider;
    provider.id = draft.id;
    provider.kind = draft.kind;
    QUrl url;
    QString error;
    if (!ProxyConfig::parseUpstream(draft.baseUrl.trimmed(), &url, &error)) {
        m_testResult->setText(tr("Failed: %1").arg(tr("Base URL: %1").arg(error)));
        m_testResult->setStyleSheet(QStringLiteral("color: #c02020;"));
        return;
    }
    provider.baseUrl = url;
    provider.upstreamProxy = draft.upstreamProxy.trimmed();
    // One of its keys: the first one switched on (a provider not applied yet has none).
    QString secret;
    const bool applied = std::any_of(m_clean.cbegin(), m_clean.cend(),
                                     [&draft](const ProviderDraft &clean) { return clean.id == draft.id; });
    KeyPool *pool = m_keys && applied ? m_keys->pool(draft.id) : nullptr;
    if (pool) {
        const QList<ApiKey> keys = pool->keys();
        for (const ApiKey &key : keys) {
            if (key.enabled) {
                secret = key.secret;
                break;
            }
        }
    }
    m_test->setEnabled(false);
    m_testResult->setStyleSheet(QString());
    m_testResult->setText(secret.isEmpty() ? tr("Asking without a key…")
                                           : tr("Asking with key %1…").arg(KeyPool::mask(secret)));
    m_probe->start(provider, runtimeConfig(), secret);
}

ProxyConfig ProvidersPage::runtimeConfig() const
{
    ProxyConfig config = m_settings->proxyConfig();
    if (m_credentials)
        m_credentials->complete(&config);
    return config;
}

bool ProvidersPage::apply()
{
    QList<ProviderConfig> providers;
    QStringList problems;
    if (!m_model->toProviders(&providers, &problems)) {
        const QString error = problems.join(QStringLiteral("; "));
        setMessage(tr("Not applied: %1").arg(error), true);
        // The first row with a problem is shown, its problems under the editor.
        for (int row = 0; row < m_model->rowCount(); ++row) {
            if (!m_model->problems(row).isEmpty()) {
                selectRow(row);
                break;
            }
        }
        Q_EMIT applyFailed(error);
        return false;
    }
    QStringList warnings;
    m_settings->setProviders(providers);
    if (!m_settings->sync())
        warnings << tr("The settings file %1 could not be written.").arg(m_settings->fileName());
    m_clean = m_model->drafts();
    updateState();
    if (m_keys) {
        // The pools first: the configuration applied next routes to them.
        warnings << m_keys->setProviders(providers);
        m_service->setProviderPools(m_keys->servicePools());
    }
    QString serviceError;
    if (!m_service->applyConfig(runtimeConfig(), &serviceError)) {
        setMessage(tr("Providers saved, but the proxy could not use them: %1").arg(serviceError), true);
        Q_EMIT applyFailed(serviceError);
        Q_EMIT applied(); // stored: the Keys page follows the stored list
        return false;
    }
    if (warnings.isEmpty())
        setMessage(providers.isEmpty() ? tr("Applied: every request goes to the Settings page's upstream.")
                                       : tr("Providers applied."),
                   false);
    else
        setMessage(warnings.join(QLatin1Char(' ')), true);
    Q_EMIT applied();
    return true;
}

bool ProvidersPage::confirmDiscardOrApply(QWidget *parent)
{
    return m_bar->confirmDiscardOrApply(parent, tr("The providers have changes that are not applied."), QStringLiteral("pendingProvidersPrompt"));
}

void ProvidersPage::setMessage(const QString &text, bool error)
{
    m_bar->setMessage(text, error);
}

QString ProvidersPage::problemText() const
{
    return m_problems->isHidden() ? QString() : m_problems->text();
}

QString ProvidersPage::messageText() const
{
    return m_bar->messageText();
}

QString ProvidersPage::testText() const
{
    return m_testResult->text();
}

} // namespace keyrelay
