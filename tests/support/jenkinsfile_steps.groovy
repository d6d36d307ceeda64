// Parse Jenkinsfiles as Groovy, syntax only (no Jenkins, no pipeline plugins), and print their shapes as
// one JSON document, by path: each file's top-level statements and its functions, each a list of nodes in
// source order. A node is a call ({type: call, name, object, named, args, body, closureParams: the body closure's
// parameters}), a try, an if, a for, an assignment or a plain expression; assignments, expressions, returns
// and if conditions carry the calls they make (`calls`, outermost first). A value carries its source text,
// the variables it reads (`vars`, and `env`/`params` for env.X/params.X) and, when it is a literal,
// `const`; a closure value its nodes and parameters. A syntax error exits non-zero with Groovy's message.
import groovy.json.JsonOutput
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.expr.*
import org.codehaus.groovy.ast.stmt.*
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases

Map value(Expression expr) {
    def vars = [] as LinkedHashSet, envs = [] as LinkedHashSet, params = [] as LinkedHashSet
    def scope = [env: envs, params: params]
    expr.visit(new CodeVisitorSupport() {
        void visitVariableExpression(VariableExpression v) { vars << v.name }
        void visitPropertyExpression(PropertyExpression p) {
            def owner = p.objectExpression
            if (owner instanceof VariableExpression && scope.containsKey(owner.name)) {
                scope[owner.name] << p.propertyAsString
            }
            super.visitPropertyExpression(p)
        }
    })
    def out = [text: expr.text, vars: vars as List, env: envs as List, params: params as List]
    if (expr instanceof ConstantExpression) {
        out.const = expr.value
        out.literal = true
    } else if (expr instanceof ClosureExpression) {
        out.closure = nodes(expr.code)
        out.closureParams = closureParams(expr)
    } else if (expr instanceof MapExpression) {
        out.map = expr.mapEntryExpressions.collectEntries { [(it.keyExpression.text): value(it.valueExpression)] }
    } else if (expr instanceof ListExpression) {
        out.list = expr.expressions.collect { value(it) }
    }
    return out
}

List closureParams(ClosureExpression c) {
    c.parameters == null ? [] : (c.parameters.length ? c.parameters*.name : ['it'])
}

/** The method calls an expression makes, outermost first; a call's own arguments are its business. */
List callsIn(Expression expr) {
    def found = []
    expr?.visit(new CodeVisitorSupport() {
        void visitMethodCallExpression(MethodCallExpression m) { found << call(m) }
        void visitClosureExpression(ClosureExpression c) {}
    })
    return found
}

Map call(MethodCallExpression c) {
    def arguments = c.arguments instanceof TupleExpression ? c.arguments.expressions : [c.arguments]
    def named = [:], positional = [], body = null, params = []
    arguments.each { arg ->
        if (arg instanceof MapExpression) {
            arg.mapEntryExpressions.each { named[it.keyExpression.text] = value(it.valueExpression) }
        } else if (arg instanceof ClosureExpression) {
            body = nodes(arg.code)
            params = closureParams(arg)
        } else {
            positional << value(arg)
        }
    }
    return [type: 'call', name: c.methodAsString, line: c.lineNumber, object: c.implicitThis ? null : value(c.objectExpression),
            named: named, args: positional, body: body, closureParams: params]
}

List nodes(Statement statement) {
    if (statement == null || statement instanceof EmptyStatement) return []
    if (statement instanceof BlockStatement) return statement.statements.collectMany { nodes(it) }
    if (statement instanceof ExpressionStatement) return [expression(statement.expression)]
    if (statement instanceof ReturnStatement) {
        return [[type: 'return', value: value(statement.expression), calls: callsIn(statement.expression)]]
    }
    if (statement instanceof TryCatchStatement) {
        return [[type: 'try', body: nodes(statement.tryStatement), catches: statement.catchStatements.collectMany { nodes(it.code) },
                 finally: nodes(statement.finallyStatement)]]
    }
    if (statement instanceof IfStatement) {
        return [[type: 'if', cond: value(statement.booleanExpression), calls: callsIn(statement.booleanExpression),
                 then: nodes(statement.ifBlock), else: nodes(statement.elseBlock)]]
    }
    if (statement instanceof ForStatement) {
        return [[type: 'for', var: statement.variable.name, collection: value(statement.collectionExpression), body: nodes(statement.loopBlock)]]
    }
    return [[type: 'statement', text: statement.text]]
}

Map expression(Expression expr) {
    if (expr instanceof MethodCallExpression) return call(expr)
    if (expr instanceof BinaryExpression && expr.operation.text == '=') {
        def target = expr instanceof DeclarationExpression ? expr.leftExpression.text : expr.leftExpression.text
        return [type: 'assign', name: target, value: value(expr.rightExpression), calls: callsIn(expr.rightExpression)]
    }
    return [type: 'expr', value: value(expr), calls: callsIn(expr)]
}

Map shape(String path) {
    def unit = new CompilationUnit()
    unit.addSource(new File(path))
    unit.compile(Phases.CONVERSION)
    def script = unit.AST.modules*.classes.flatten().find { it.isScript() }
    def functions = script.methods.findAll { !(it.name in ['main', 'run']) }.collectEntries { m ->
        [(m.name): [params: m.parameters*.name, body: nodes(m.code)]]
    }
    return [script: nodes(script.methods.find { it.name == 'run' }.code), functions: functions]
}

println JsonOutput.toJson(args.collectEntries { [(it): shape(it)] })
